/**
 * What runfleet promises about Node.js (package.json engines.node) holds for what it installs:
 * every package in the lock runs on every version the promise admits, the Node.js running the tests
 * is one of them (CI runs them on 20, 22 and 24), and the AWS SDK clients are pinned. The rules
 * scripts/aws-sdk-update.mjs uses to move the SDK are checked on made-up releases.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import semver from 'semver';
import {
  AWS_SDK_CLIENTS,
  lockEngineProblems,
  lockEntryName,
  newestCovering,
  type LockFile,
} from '../../scripts/node-support.mjs';

const root = join(import.meta.dirname, '../..');
const readJson = async <T>(file: string) => JSON.parse(await readFile(join(root, file), 'utf8')) as T;

interface PackageJson {
  engines: { node: string };
  dependencies: Record<string, string>;
}

t.test('every package in the lock runs on every Node.js version engines.node admits', async (t) => {
  const pkg = await readJson<PackageJson>('package.json');
  const lock = await readJson<LockFile>('package-lock.json');
  t.ok(semver.validRange(pkg.engines.node), `engines.node ${pkg.engines.node} is a range`);
  t.same(lockEngineProblems(lock, pkg.engines.node), [], 'no package needs a newer (or older) Node.js');
  t.equal(lock.packages?.['']?.engines?.node, pkg.engines.node, 'the lock is in step with package.json');
});

t.test('the Node.js running the tests is one engines.node admits', async (t) => {
  const pkg = await readJson<PackageJson>('package.json');
  t.ok(semver.satisfies(process.version, pkg.engines.node), `${process.version} in ${pkg.engines.node}`);
});

t.test('the AWS SDK clients are pinned to the exact versions in the lock', async (t) => {
  const pkg = await readJson<PackageJson>('package.json');
  const lock = await readJson<LockFile>('package-lock.json');
  for (const name of AWS_SDK_CLIENTS) {
    const spec = pkg.dependencies[name] ?? '';
    t.ok(semver.valid(spec), `${name} is pinned (${spec}), so npm install cannot float it`);
    t.equal(lock.packages?.[`node_modules/${name}`]?.version, spec, `the lock installs ${name}@${spec}`);
  }
});

t.test('a lock entry that needs Node.js 22 is a problem exactly while engines admits 20', async (t) => {
  const lock: LockFile = {
    packages: {
      '': { version: '0.1.0', engines: { node: '^20.19.0 || ^22.13.0 || ^24.0.0' } },
      'node_modules/@aws-sdk/core': { version: '3.999.0', engines: { node: '>=22.0.0' } },
      'node_modules/a/node_modules/@smithy/core': { version: '4.0.0', engines: { node: '>=20.0.0' } },
      'node_modules/old': { version: '1.0.0', engines: { node: ['>= 0.4'] } },
      'node_modules/none': { version: '1.0.0' },
    },
  };
  t.same(lockEngineProblems(lock, '^20.19.0 || ^22.13.0 || ^24.0.0'), [
    '@aws-sdk/core@3.999.0 needs node >=22.0.0',
  ]);
  t.same(lockEngineProblems(lock, '^22.13.0 || ^24.0.0'), [], 'fine once the floor is 22');
  t.same(lockEngineProblems(lock, '>=18'), [
    '@aws-sdk/core@3.999.0 needs node >=22.0.0',
    '@smithy/core@4.0.0 needs node >=20.0.0',
  ]);
  t.equal(lockEntryName('node_modules/a/node_modules/@smithy/core'), '@smithy/core');
});

t.test('sdk:update takes the newest stable release that runs on the whole range', async (t) => {
  const releases = {
    '3.1169.0': '>=20.0.0',
    '3.1170.0': '>=20.0.0',
    '3.1171.0': '>=22.0.0',
    '3.1172.0-beta.0': '>=20.0.0',
    '3.1173.0': '>=22.0.0',
  };
  t.equal(newestCovering(releases, '^20.19.0 || ^22.13.0 || ^24.0.0'), '3.1170.0', 'last one for Node 20');
  t.equal(newestCovering(releases, '^22.13.0 || ^24.0.0'), '3.1173.0', 'the newest once the floor is 22');
  t.equal(newestCovering(releases, '>=18'), undefined, 'none runs on 18');
  t.equal(newestCovering({ '1.0.0': undefined }, '>=18'), '1.0.0', 'no engines field runs anywhere');
});
