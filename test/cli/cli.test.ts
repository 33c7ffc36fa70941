import t, { type Test } from 'tap';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/index.js';
import { LOCAL_FLEETS, runCli } from './helpers.js';

function project(t: Test, fleets: Record<string, string> = { 'fleets.yaml': LOCAL_FLEETS }) {
  return t.testdir({ fleets });
}

t.test('validate: valid fleets exit 0, invalid exit 1 with file:line:col', async (t) => {
  const dir = project(t);
  const ok = await runCli(dir, ['validate']);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /2 fleet\(s\) in 1 file\(s\)/);

  await writeFile(
    join(dir, 'fleets', 'bad.yaml'),
    'name: gamma\nprovider: { type: local }\nmax_instances: many\n',
  );
  const bad = await runCli(dir, ['validate']);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /fleets\/bad\.yaml:3:\d+: .*max_instances/);
});

t.test('plan -> apply -> plan shows No changes', async (t) => {
  const dir = project(t);
  const first = await runCli(dir, ['plan', '--detailed-exitcode']);
  t.equal(first.code, 2, first.stderr);
  t.match(first.stdout, /fleet\.alpha will be created/);
  t.match(first.stdout, /Plan: \d+ to add, 0 to change, 0 to destroy\./);

  const applied = await runCli(dir, ['apply', '--auto-approve']);
  t.equal(applied.code, 0, applied.stderr);
  t.match(applied.stdout, /Apply complete!/);

  const again = await runCli(dir, ['plan', '--detailed-exitcode']);
  t.equal(again.code, 0, again.stdout + again.stderr);
  t.match(again.stdout, /No changes\./);

  const state = await runCli(dir, ['state', 'list', '--json']);
  t.equal(state.code, 0, state.stderr);
  const parsed = JSON.parse(state.stdout) as { instances: { fleet: string; state: string }[] };
  // alpha: idle_count 4 slots / 2 per instance = 2; beta: idle_count 1 slot = 1.
  t.equal(parsed.instances.filter((i) => i.fleet === 'alpha').length, 2);
  t.equal(parsed.instances.filter((i) => i.fleet === 'beta').length, 1);

  const hist = await runCli(dir, ['history']);
  t.equal(hist.code, 0);
  t.match(hist.stdout, /success/);
});

t.test('a removed fleet file plans a destroy of the fleet and its instances', async (t) => {
  const dir = project(t);
  t.equal((await runCli(dir, ['apply', '--auto-approve'])).code, 0);
  await writeFile(join(dir, 'fleets', 'fleets.yaml'), LOCAL_FLEETS.split('---')[0]!);
  const plan = await runCli(dir, ['plan']);
  t.equal(plan.code, 0, plan.stderr);
  t.match(plan.stdout, /fleet\.beta will be destroyed/);
  t.match(plan.stdout, /0 to add, 0 to change, 2 to destroy/);
  t.equal((await runCli(dir, ['apply', '--auto-approve'])).code, 0);
  const state = JSON.parse((await runCli(dir, ['state', 'list', '--json'])).stdout) as {
    fleets: { name: string }[];
  };
  t.same(
    state.fleets.map((f) => f.name),
    ['alpha'],
  );
});

t.test('apply refuses without a TTY unless --auto-approve', async (t) => {
  const dir = project(t);
  const r = await runCli(dir, ['apply']);
  t.equal(r.code, 1);
  t.match(r.stderr, /refusing to apply without confirmation/);
  t.match(r.stderr, /--auto-approve/);
});

t.test('saved plan: applied exactly, refused when stale', async (t) => {
  const dir = project(t);
  const saved = await runCli(dir, ['plan', '--out', 'first.plan']);
  t.equal(saved.code, 0, saved.stderr);
  t.match(saved.stdout, /runfleet apply first\.plan/);
  const staleToo = await runCli(dir, ['plan', '--out', 'second.plan']);
  t.equal(staleToo.code, 0);

  const applied = await runCli(dir, ['apply', 'first.plan']);
  t.equal(applied.code, 0, applied.stderr);

  const stale = await runCli(dir, ['apply', 'second.plan']);
  t.equal(stale.code, 1);
  t.match(stale.stderr, /Saved plan is stale/);

  await writeFile(join(dir, 'junk.plan'), '{"hello":1}');
  const junk = await runCli(dir, ['apply', 'junk.plan']);
  t.equal(junk.code, 1);
  t.match(junk.stderr, /not a runfleet plan file/);
});

t.test('lock contention names the holder; force-unlock releases it', async (t) => {
  const dir = project(t);
  t.equal((await runCli(dir, ['validate'])).code, 0);
  const store = await openSqliteStore(join(dir, '.runfleet', 'state.db'));
  const lock = await store.acquireLock('apply', 'someone@elsewhere pid 42');
  await store.close();

  const blocked = await runCli(dir, ['apply', '--auto-approve']);
  t.equal(blocked.code, 1);
  t.match(blocked.stderr, /locked by someone@elsewhere pid 42/);
  t.match(blocked.stderr, new RegExp(`force-unlock ${lock.id}`));
  t.notMatch(blocked.stderr, /retrying may help/, 'a held lock is not something a retry fixes');

  const wrong = await runCli(dir, ['force-unlock', 'nope']);
  t.equal(wrong.code, 1);
  const unlocked = await runCli(dir, ['force-unlock', lock.id]);
  t.equal(unlocked.code, 0, unlocked.stderr);
  t.equal((await runCli(dir, ['apply', '--auto-approve'])).code, 0);
});

t.test('plan formats: json is a parseable plan, markdown has a diff block', async (t) => {
  const dir = project(t);
  const json = await runCli(dir, ['plan', '--format', 'json']);
  t.equal(json.code, 0, json.stderr);
  const plan = JSON.parse(json.stdout) as { format: number; fleets: { fleet: string; action: string }[] };
  t.equal(plan.format, 1);
  t.same(
    plan.fleets.map((f) => [f.fleet, f.action]),
    [
      ['alpha', 'create'],
      ['beta', 'create'],
    ],
  );
  const md = await runCli(dir, ['plan', '--format', 'markdown']);
  t.equal(md.code, 0);
  t.match(md.stdout, /```diff/);
});

t.test('an invalid fleet file stops plan and apply before anything is touched', async (t) => {
  const dir = project(t);
  t.equal((await runCli(dir, ['apply', '--auto-approve'])).code, 0);
  const before = await readFile(join(dir, '.runfleet', 'state.db'));
  await writeFile(join(dir, 'fleets', 'broken.yaml'), 'name: [\n');
  const r = await runCli(dir, ['apply', '--auto-approve']);
  t.equal(r.code, 1);
  t.match(r.stderr, /fleets\/broken\.yaml:\d+:\d+/);
  t.match(r.stderr, /nothing was planned/);
  const state = JSON.parse((await runCli(dir, ['state', 'list', '--json'])).stdout) as {
    instances: unknown[];
  };
  t.equal(state.instances.length, 3);
  t.ok(before.length > 0);
  await rm(join(dir, 'fleets', 'broken.yaml'));
});

t.test('help teaches: examples and exit codes', async (t) => {
  const dir = project(t);
  const r = await runCli(dir, ['--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /Exit codes: 0 success, 1 error, 2 changes present/);
  t.match(r.stdout, /runfleet plan --out/);
  const unknown = await runCli(dir, ['frobnicate']);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /unknown command/);
});

t.test('--version and -V print runfleet, Node.js and platform, and touch nothing', async (t) => {
  const dir = t.testdir({});
  const pkg = JSON.parse(await readFile(join(import.meta.dirname, '../../package.json'), 'utf8')) as {
    version: string;
  };
  // The build (npm run build) records the checkout's revision; a copy without .git (CI's trees for
  // other Node versions) has none, and says `unknown`.
  const { execFileSync } = await import('node:child_process');
  let head = 'unknown';
  try {
    head = execFileSync('git', ['rev-parse', '--short=8', 'HEAD'], {
      cwd: join(import.meta.dirname, '../..'),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    // not a git checkout
  }
  const platform = `node ${process.version}, ${process.platform}-${process.arch}`;
  const expected = new RegExp(
    `^runfleet ${pkg.version.replace(/\./g, '\\.')} \\(${head}(-dirty)?; ${platform}\\)\n$`,
  );
  for (const flag of ['--version', '-V']) {
    const r = await runCli(dir, [flag]);
    t.equal(r.code, 0, flag);
    t.match(r.stdout, expected, `${flag} prints the versions of what runs it`);
    t.equal(r.stderr, '', `${flag}: nothing on stderr (no warnings)`);
  }
  t.same(await readdir(dir), [], 'no state directory created');
});

t.test('a static fleet plans its hosts as fixed capacity and warns about unreachable ones', async (t) => {
  const { createServer } = await import('node:net');
  const sshd = createServer((s) => s.end('SSH-2.0-test\r\n'));
  await new Promise<void>((r) => sshd.listen(0, '127.0.0.1', r));
  t.teardown(() => sshd.close());
  const port = (sshd.address() as { port: number }).port;
  const dir = project(t, {
    'static.yaml': `name: onprem
provider:
  type: static
  hosts: ["127.0.0.1:${port}", "127.0.0.1:1"]
max_instances: 2
connector: { username: ci, key_path: /dev/null, use_static_credentials: true }
`,
  });
  const plan = await runCli(dir, ['plan']);
  t.equal(plan.code, 0, plan.stderr);
  t.match(plan.stdout, /fleet\.onprem will be created/);
  t.match(plan.stdout, /STATIC_HOST_UNREACHABLE/);
  t.match(plan.stdout, /127\.0\.0\.1:1/);
  t.match(plan.stdout, /Plan: 1 to add, 0 to change, 0 to destroy\./);
  t.equal((await runCli(dir, ['apply', '--auto-approve'])).code, 0);
  const again = await runCli(dir, ['plan', '--detailed-exitcode']);
  t.equal(again.code, 0, again.stdout);
});

t.test("watch --help names the daemon's own default listen address", async (t) => {
  const { DEFAULT_LISTEN } = await import('../../src/daemon/http.js');
  const r = await runCli(project(t), ['watch', '--help']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout.replace(/\s+/g, ' '), `(default: "${DEFAULT_LISTEN}")`);
});
