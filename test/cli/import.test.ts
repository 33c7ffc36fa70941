/**
 * `runfleet import` through the real binary: files written and accepted by `runfleet validate`,
 * --dry-run, overwrite rules and --force, exit codes, a TOML syntax error, --help, and no token of
 * the input in stdout, stderr or any file.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { runCli, type CliResult } from './helpers.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'import');
const EPOCH = { SOURCE_DATE_EPOCH: String(Date.UTC(2026, 0, 15) / 1000) };

/** A project directory with `config.toml` copied from a fixture and an empty fleets/. */
async function project(t: Test, fixture: string): Promise<string> {
  const dir = t.testdir({ fleets: {} });
  await copyFile(join(FIXTURES, fixture), join(dir, 'config.toml'));
  return dir;
}

const importCli = (dir: string, args: string[]) =>
  runCli(dir, ['import', 'config.toml', ...args], { env: EPOCH });
const fleetFiles = (dir: string) => readdirSync(join(dir, 'fleets')).sort();

function assertNoToken(t: Test, dir: string, fixture: string, results: CliResult[]): void {
  const tokens = [...readFileSync(join(FIXTURES, fixture), 'utf8').matchAll(/"(glrt-[A-Za-z0-9]+)"/g)].map(
    (m) => m[1]!,
  );
  t.ok(tokens.length > 0, 'the input holds tokens');
  const files = readdirSync(join(dir, 'fleets'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => readFileSync(join(dir, 'fleets', f), 'utf8'));
  const everything = [...results.flatMap((r) => [r.stdout, r.stderr]), ...files].join('\n');
  for (const token of tokens)
    t.notOk(everything.includes(token), 'a token never reaches stdout, stderr or a file');
}

t.test(
  'import writes fleet files that runfleet validate accepts; the next steps name the token variable',
  async (t) => {
    const dir = await project(t, 'docker-autoscaler-aws.toml');
    const r = await importCli(dir, []);
    t.equal(r.code, 0, r.stderr);
    t.same(fleetFiles(dir), ['docker-autoscaler-example.yaml']);
    t.match(r.stdout, /Wrote fleets\/docker-autoscaler-example\.yaml/);
    t.match(r.stdout, /export RUNFLEET_TOKEN_DOCKER_AUTOSCALER_EXAMPLE=glrt-\.\.\./);
    t.match(r.stdout, /not carried over:\n.*plugin_config\.config_file/);
    const text = await readFile(join(dir, 'fleets', 'docker-autoscaler-example.yaml'), 'utf8');
    t.match(text, /^# yaml-language-server: \$schema=\.\.\/schemas\/fleet\.schema\.json\n/);
    t.match(text, /on 2026-01-15 from ".*config\.toml"/, 'the date comes from SOURCE_DATE_EPOCH');
    const validated = await runCli(dir, ['validate']);
    t.equal(validated.code, 0, validated.stderr);
    t.match(validated.stdout, /1 fleet\(s\) in 1 file\(s\)/);
    assertNoToken(t, dir, 'docker-autoscaler-aws.toml', [r, validated]);
  },
);

t.test('--dry-run prints the files and the report and writes nothing', async (t) => {
  const dir = await project(t, 'docker-autoscaler-aws.toml');
  const r = await importCli(dir, ['--dry-run']);
  t.equal(r.code, 0, r.stderr);
  t.match(
    r.stdout,
    /# --- fleets\/docker-autoscaler-example\.yaml \(would be written\) ---\n# yaml-language-server/,
  );
  t.match(r.stdout, /auto_scaling_group: my-docker-asg/);
  t.match(r.stdout, /nothing was written/);
  t.same(fleetFiles(dir), []);
  assertNoToken(t, dir, 'docker-autoscaler-aws.toml', [r]);
});

t.test('overwrites only what an import of the same runner wrote; --force for anything else', async (t) => {
  const dir = await project(t, 'docker-autoscaler-aws.toml');
  t.equal((await importCli(dir, [])).code, 0);
  const again = await importCli(dir, []);
  t.equal(again.code, 0, `a re-import of the same runner overwrites its file\n${again.stderr}`);

  const path = join(dir, 'fleets', 'docker-autoscaler-example.yaml');
  await writeFile(path, '# hand-written\nname: other\nprovider: { type: local }\nmax_instances: 1\n');
  const refused = await importCli(dir, []);
  t.equal(refused.code, 1);
  t.match(
    refused.stderr,
    /fleets\/docker-autoscaler-example\.yaml exists and was not written by runfleet import/,
  );
  t.match(refused.stderr, /Nothing was written.*--force/s);
  t.match(await readFile(path, 'utf8'), /^# hand-written/, 'the file is untouched');

  // A file a previous import wrote for another runner is not this runner's either.
  await writeFile(
    path,
    '# runfleet-import-runner: "someone else"\nname: other\nprovider: { type: local }\nmax_instances: 1\n',
  );
  const other = await importCli(dir, []);
  t.equal(other.code, 1);
  t.match(
    other.stderr,
    /was imported from runner "someone else", not "docker autoscaler example"; not overwriting it/,
  );

  const forced = await importCli(dir, ['--force']);
  t.equal(forced.code, 0, forced.stderr);
  t.match(await readFile(path, 'utf8'), /runfleet-import-runner: "docker autoscaler example"/);
  assertNoToken(t, dir, 'docker-autoscaler-aws.toml', [again, refused, other, forced]);
});

t.test('a fleet name already used by a hand-written file is not reused', async (t) => {
  const dir = await project(t, 'docker-autoscaler-aws.toml');
  await writeFile(
    join(dir, 'fleets', 'local.yaml'),
    'name: docker-autoscaler-example\nprovider: { type: local }\nmax_instances: 1\n',
  );
  const r = await importCli(dir, []);
  t.equal(r.code, 0, r.stderr);
  t.same(fleetFiles(dir), ['docker-autoscaler-example-2.yaml', 'local.yaml']);
  t.match(
    r.stdout,
    /fleet name docker-autoscaler-example was taken; this fleet is docker-autoscaler-example-2/,
  );
  t.equal((await runCli(dir, ['validate'])).code, 0, 'both fleets validate together');
});

t.test('exit 1 when an autoscaler runner cannot be imported; the others are written', async (t) => {
  const dir = await project(t, 'mixed.toml');
  const r = await importCli(dir, ['--out', 'fleets/imported']);
  t.equal(r.code, 1);
  t.match(
    r.stdout,
    /runner "GCP Pool" \(executor docker-autoscaler\): NOT IMPORTED\n.*plugin "googlecloud:latest": fleeting plugins are not supported yet/,
  );
  t.match(r.stdout, /runner "shell on the manager" \(executor shell\): skipped/);
  t.same(readdirSync(join(dir, 'fleets', 'imported')).sort(), ['aws-pool-2.yaml', 'aws-pool.yaml']);
  t.match(
    await readFile(join(dir, 'fleets', 'imported', 'aws-pool.yaml'), 'utf8'),
    /\$schema=\.\.\/\.\.\/schemas\/fleet\.schema\.json/,
    'the schema line is relative to --out',
  );
  t.equal((await runCli(dir, ['validate'])).code, 0);
  assertNoToken(t, dir, 'mixed.toml', [r]);
});

t.test('a TOML syntax error: file:line:col, no stack trace, no token, exit 1', async (t) => {
  const dir = await project(t, 'broken-syntax.toml');
  const r = await importCli(dir, []);
  t.equal(r.code, 1);
  t.match(r.stderr, /^config\.toml:5:\d+: TOML syntax error: /);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.same(fleetFiles(dir), []);
  assertNoToken(t, dir, 'broken-syntax.toml', [r]);
});

t.test('a missing file or a bad --region is a usage error, not a stack trace', async (t) => {
  const dir = t.testdir({});
  const r = await runCli(dir, ['import', 'nope.toml']);
  t.equal(r.code, 1);
  t.match(
    r.stderr,
    /Error: cannot read nope\.toml \(ENOENT\)\n {2}hint: pass the path of GitLab Runner config\.toml/,
  );
  const region = await runCli(dir, ['import', 'nope.toml', '--region', 'Frankfurt']);
  t.equal(region.code, 1);
  t.match(
    region.stderr,
    /Error: --region "Frankfurt" is not an AWS region\n {2}hint: e\.g\. --region eu-west-1/,
  );
});

t.test('import --help teaches with examples', async (t) => {
  const r = await runCli(t.testdir({}), ['import', '--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /Examples:\n {2}runfleet import \/etc\/gitlab-runner\/config\.toml --dry-run/);
  t.match(r.stdout, /--force/);
  t.match(r.stdout, /RUNFLEET_TOKEN_<NAME>/);
});
