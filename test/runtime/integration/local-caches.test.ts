/**
 * Caches without a cache block, through the real manager:
 * - the embedded local provider keeps them in one directory under the state directory, which
 *   every sandbox shares: a job in a fresh sandbox restores what a job in another one saved;
 * - instances reached over SSH keep them on the instance, where GitLab Runner's non-distributed
 *   cache lives (`/tmp/runfleet-cache/<project path>/<key>/cache.zip`, the builds dir's sibling).
 * Also: RESTORE_CACHE_ATTEMPTS retries a broken archive, and the job still runs when it stays broken.
 */
import t from 'tap';
import { existsSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { exampleJob } from '../../../src/devtools/coordinator/example-job.js';
import { REMOTE_BUILDS_DIR } from '../../../src/runtime/executor-factory.js';
import type { JobCache } from '../../../src/runtime/gitlab/job.js';
import { createSshdProvider } from '../../helpers/sshd-provider.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startHarness, type Harness } from './harness.js';

const fleetYaml = (name: string) =>
  [
    `name: ${name}`,
    'provider: { type: local }',
    'executor: instance',
    'capacity_per_instance: 1',
    'max_instances: 2',
    'max_use_count: 1',
    'policy:',
    '  - idle_count: 1',
    '    idle_time: 10m',
  ].join('\n');

const run = async (
  h: Harness,
  id: number,
  project: string,
  script: string[],
  cache: JobCache[],
  variables = {},
) => {
  h.coordinator.enqueue({
    ...exampleJob(id, { projectName: project, serverUrl: h.coordinator.url, script, variables }),
    cache,
  });
  return h.finished(id, 60_000);
};
const instanceOf = (log: string) => /executor on instance (\S+)/.exec(log)?.[1];

t.test('local provider: one cache directory under the state dir, shared by every sandbox', async (t) => {
  const h = await startHarness(t, { fleetName: 'it-local-cache', fleetYaml: fleetYaml('it-local-cache') });
  const cache = [{ key: 'deps', paths: ['vendor/'] }];
  const first = await run(h, 1, 'local', ['mkdir -p vendor', 'echo "from-sandbox-one" > vendor/x'], cache);
  t.equal(first.state, 'success', first.log);
  const file = join(h.dir, 'cache', 'acme', 'local', 'deps', 'cache.zip');
  t.match(first.log, `Uploading cache.zip to ${file}`);
  t.ok(existsSync(file), 'cache.zip is under <state dir>/cache/<project path>/<key>/');

  const second = await run(h, 2, 'local', ['cat vendor/x'], cache);
  t.equal(second.state, 'success', second.log);
  t.not(instanceOf(second.log), instanceOf(first.log), 'another sandbox');
  t.match(second.log, 'Successfully extracted cache');
  t.match(second.log, 'from-sandbox-one');
  t.match(second.log, 'Archive is up to date!');

  // A broken archive: each attempt fails, the job goes on without its cache.
  const broken = join(h.dir, 'cache', 'acme', 'local', 'broken', 'cache.zip');
  mkdirSync(join(broken, '..'), { recursive: true });
  writeFileSync(broken, 'this is not a zip file');
  const third = await run(
    h,
    3,
    'local',
    ['echo "ran anyway"'],
    [{ key: 'broken', paths: ['vendor/'], policy: 'pull' }],
    {
      RESTORE_CACHE_ATTEMPTS: '3',
    },
  );
  t.equal(third.state, 'success', third.log);
  t.match(third.log, 'Retrying cache restore (attempt 2 of 3)');
  t.match(third.log, 'Retrying cache restore (attempt 3 of 3)');
  t.notMatch(third.log, 'attempt 4');
  t.match(third.log, 'Failed to extract cache');
  t.match(third.log, 'ran anyway');

  // untracked: what `git ls-files -o` lists (ignored files too), without naming paths.
  const untracked = [{ key: 'untracked', untracked: true }];
  const fourth = await run(
    h,
    4,
    'local-git',
    ['git init -q .', 'echo tracked > kept.txt', 'git add kept.txt', 'echo "not in git" > loose.txt'],
    untracked,
  );
  t.equal(fourth.state, 'success', fourth.log);
  t.match(fourth.log, 'untracked: found 1 files');
  const fifth = await run(
    h,
    5,
    'local-git',
    ['cat loose.txt', 'test ! -e kept.txt && echo "tracked file not cached"'],
    untracked,
  );
  t.equal(fifth.state, 'success', fifth.log);
  t.match(fifth.log, 'not in git');
  t.match(fifth.log, 'tracked file not cached');
});

t.test('type local: object names under <state dir>/cache; max_uploaded_archive_size holds', async (t) => {
  const h = await startHarness(t, {
    fleetName: 'it-typed-cache',
    fleetYaml: `${fleetYaml('it-typed-cache')}\ncache: { type: local, path: ci, shared: true, max_uploaded_archive_size: 2000 }`,
  });
  const small = await run(
    h,
    1,
    'typed',
    ['mkdir -p s', 'echo small > s/x'],
    [{ key: 'small', paths: ['s/'] }],
  );
  t.equal(small.state, 'success', small.log);
  const file = join(h.dir, 'cache', 'ci', 'project', '7', 'small');
  t.match(small.log, `Uploading cache.zip to ${file}`);
  t.ok(existsSync(file), "GitLab Runner's object name, shared: no runner segment");
  const big = await run(
    h,
    2,
    'typed',
    ['mkdir -p b', 'head -c 100000 /dev/urandom > b/random'],
    [{ key: 'big', paths: ['b/'] }],
  );
  t.equal(big.state, 'success', big.log);
  t.match(big.log, /Cache archive size \(\d+\) is too big \(Limit is set to 2000\)/);
  t.notOk(existsSync(join(h.dir, 'cache', 'ci', 'project', '7', 'big')), 'not stored');
});

if (requireOrSkip(t, 'sshd', 'ssh-keygen')) {
  t.test('SSH instances without a cache block: the cache stays on the instance', async (t) => {
    const provider = createSshdProvider(t);
    const h = await startHarness(t, {
      fleetName: 'it-instance-cache',
      providers: () => provider,
      fleetYaml: fleetYaml('it-instance-cache'),
    });
    const project = `ic-${process.pid}-${randomBytes(3).toString('hex')}`;
    const dir = `/tmp/runfleet-cache/acme/${project}`;
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const cache = [{ key: 'deps', paths: ['out/'] }];
    // The sshd instances share this machine's builds dir: emptied between jobs, as on a new instance.
    const builds = `${REMOTE_BUILDS_DIR}/${h.shortToken}/0/acme/${project}`;
    t.teardown(() => rmSync(builds, { recursive: true, force: true }));
    const first = await run(h, 1, project, ['mkdir -p out', 'echo "kept on the instance" > out/y'], cache);
    rmSync(builds, { recursive: true, force: true });
    t.equal(first.state, 'success', first.log);
    t.match(
      first.log,
      `No URL provided, cache will not be uploaded to shared cache server. Cache will be stored only locally: ${dir}/deps/cache.zip`,
    );
    // Every test instance is an sshd on this machine, so "the instance's disk" is this one.
    t.ok(existsSync(`${dir}/deps/cache.zip`), "GitLab's non-distributed cache path");
    const second = await run(h, 2, project, ['cat out/y'], cache);
    t.equal(second.state, 'success', second.log);
    t.match(second.log, 'No URL provided, cache will not be downloaded from shared cache server');
    t.match(second.log, 'kept on the instance');
  });
}
