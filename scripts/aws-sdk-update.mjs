// `npm run sdk:update [-- --engines RANGE]`: moves the AWS SDK in package.json and
// package-lock.json to the newest releases that run on every Node.js version that package.json's
// engines.node admits. The three clients are pinned to exact versions; everything the SDK brings
// (@aws-sdk/*, @smithy/*, @aws-crypto/*, @aws/*) moves to the newest release their ranges allow.
//
// With --engines RANGE, engines.node becomes RANGE first. The day runfleet's baseline moves to
// Node.js 22, `npm run sdk:update -- --engines '^22.13.0 || ^24.0.0'` raises the floor and brings in
// the SDK releases that need Node.js 22, in one command.
//
// Run it on the oldest Node.js line the range admits: npm prefers the releases that run on the
// Node.js it runs on. When the result would still need a newer Node.js than the range admits,
// package.json and package-lock.json are put back and it names the packages.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import semver from 'semver';
import {
  AWS_SDK_CLIENTS,
  AWS_SDK_SCOPES,
  lockEngineProblems,
  lockEntryName,
  newestCovering,
} from './node-support.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const PKG = `${root}package.json`;
const LOCK = `${root}package-lock.json`;
const saved = { pkg: readFileSync(PKG, 'utf8'), lock: readFileSync(LOCK, 'utf8') };

function fail(message) {
  writeFileSync(PKG, saved.pkg);
  writeFileSync(LOCK, saved.lock);
  console.error(`sdk:update: ${message}`);
  console.error('package.json and package-lock.json are as they were; `npm ci` puts node_modules back.');
  process.exit(1);
}

const npm = (...args) =>
  execFileSync('npm', [...args, '--no-audit', '--no-fund'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });

/** SDK package name → version, from the lock (the first copy found of each). */
function sdkVersions() {
  const lock = JSON.parse(readFileSync(LOCK, 'utf8'));
  const out = new Map();
  for (const [path, entry] of Object.entries(lock.packages)) {
    const name = lockEntryName(path);
    if (AWS_SDK_SCOPES.some((s) => name.startsWith(s)) && !out.has(name)) out.set(name, entry.version);
  }
  return out;
}

const { values } = parseArgs({ options: { engines: { type: 'string' } } });
const pkg = JSON.parse(saved.pkg);
if (values.engines !== undefined) {
  if (!semver.validRange(values.engines)) fail(`--engines ${values.engines} is not a version range`);
  pkg.engines = { ...pkg.engines, node: values.engines };
  writeFileSync(PKG, `${JSON.stringify(pkg, null, 2)}\n`);
}
const supported = pkg.engines.node;
if (!semver.satisfies(process.version, supported)) {
  fail(`this is Node.js ${process.version}, which engines.node (${supported}) leaves out`);
}

const before = sdkVersions();
try {
  const targets = AWS_SDK_CLIENTS.map((name) => {
    const current = semver.minVersion(pkg.dependencies[name]).version;
    const listed = JSON.parse(npm('view', `${name}@>=${current}`, 'version', 'engines', '--json'));
    const releases = Object.fromEntries([listed].flat().map((r) => [r.version, r.engines?.node]));
    const version = newestCovering(releases, supported);
    if (!version) fail(`no release of ${name} since ${current} runs on all of ${supported}`);
    return `${name}@${version}`;
  });
  npm('install', '--save-exact', '--engine-strict', ...targets);
  const rest = [...sdkVersions().keys()].filter((n) => !AWS_SDK_CLIENTS.includes(n));
  npm('update', '--engine-strict', ...rest);
} catch (e) {
  fail(`npm failed: ${e.message.split('\n')[0]}`);
}

const problems = lockEngineProblems(JSON.parse(readFileSync(LOCK, 'utf8')), supported);
if (problems.length > 0) {
  fail(
    `the lock would need a newer Node.js than engines.node (${supported}) admits:\n  ${problems.join('\n  ')}\n` +
      'run it on the oldest Node.js line of the range, or raise the floor with --engines',
  );
}

const after = sdkVersions();
const moved = [...after].filter(([name, v]) => before.get(name) !== v);
console.log(`sdk:update: engines.node ${supported}; ${moved.length} AWS SDK package(s) moved`);
for (const name of AWS_SDK_CLIENTS) {
  console.log(`  ${name} ${before.get(name) ?? '-'} -> ${after.get(name)}`);
}
for (const [name, v] of moved) {
  if (!AWS_SDK_CLIENTS.includes(name)) console.log(`  ${name} ${before.get(name) ?? '-'} -> ${v}`);
}
