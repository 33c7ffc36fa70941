/**
 * The CLI against a shared PostgreSQL state store (a cluster this file starts): plan, apply, state,
 * history, the apply lock and force-unlock, from two working directories (two "machines"), and
 * where the password may come from — never from the URL, never printed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { openPostgresStore } from '../../src/store/postgres-store.js';
import { SECRET_PASSWORD, SECRET_ROLE, startPostgres } from '../helpers/topology/postgres.js';
import { LOCAL_FLEETS, runCli } from './helpers.js';

const cluster = await startPostgres(t);

if (cluster) {
  const project = () => t.testdir({ fleets: { 'fleets.yaml': LOCAL_FLEETS } });

  t.test('plan, apply, state, history and the lock work against the shared store', async (t) => {
    const db = await cluster.createDatabase();
    const url = cluster.url(db);
    const one = t.testdir({ fleets: { 'fleets.yaml': LOCAL_FLEETS } });
    const other = mkdtempSync(join(tmpdir(), 'runfleet-other-'));
    t.teardown(() => rmSync(other, { recursive: true, force: true }));

    const plan = await runCli(one, ['plan', '--detailed-exitcode', '--state', url]);
    t.equal(plan.code, 2, plan.stderr);
    t.match(plan.stdout, /fleet\.alpha will be created/);
    const applied = await runCli(one, ['apply', '--auto-approve'], { env: { RUNFLEET_STATE: url } });
    t.equal(applied.code, 0, applied.stderr);
    const again = await runCli(one, ['plan', '--detailed-exitcode', '--state', url]);
    t.equal(again.code, 0, again.stdout + again.stderr);

    // Another machine (another working directory) reads the same state.
    const state = await runCli(other, ['state', 'list', '--json', '--state', url]);
    t.equal(state.code, 0, state.stderr);
    const parsed = JSON.parse(state.stdout) as { fleets: { name: string }[]; instances: { fleet: string }[] };
    t.same(
      parsed.fleets.map((f) => f.name),
      ['alpha', 'beta'],
    );
    t.equal(parsed.instances.filter((i) => i.fleet === 'alpha').length, 2);
    const hist = await runCli(other, ['history', '--state', url]);
    t.equal(hist.code, 0, hist.stderr);
    t.match(hist.stdout, /success/);

    // The apply lock lives in the database: a holder elsewhere blocks this apply, by name.
    const store = await openPostgresStore(cluster.pool(db), url);
    const lock = await store.acquireLock('apply', 'someone@elsewhere pid 42');
    await store.close();
    const blocked = await runCli(one, ['apply', '--auto-approve', '--state', url]);
    t.equal(blocked.code, 1);
    t.match(blocked.stderr, /state is locked by someone@elsewhere pid 42 \(apply\)/);
    t.match(blocked.stderr, new RegExp(`force-unlock ${lock.id}`));
    const unlocked = await runCli(other, ['force-unlock', lock.id, '--state', url]);
    t.equal(unlocked.code, 0, unlocked.stderr);
    t.equal((await runCli(one, ['apply', '--auto-approve', '--state', url])).code, 0);
  });

  t.test('the password comes from PGPASSWORD or password_file and is never printed', async (t) => {
    const db = await cluster.createDatabase();
    const dir = project();
    const url = cluster.url(db, SECRET_ROLE);

    const wrong = await runCli(dir, ['state', 'list', '--state', url], { env: { PGPASSWORD: 'not-it-123' } });
    t.equal(wrong.code, 1);
    t.match(wrong.stderr, /cannot open state store/);
    t.match(wrong.stderr, /password authentication failed/);
    t.notMatch(wrong.stderr + wrong.stdout, /not-it-123/);

    const fromEnv = await runCli(dir, ['state', 'list', '--state', url], {
      env: { PGPASSWORD: SECRET_PASSWORD },
    });
    t.equal(fromEnv.code, 0, fromEnv.stderr);
    t.match(fromEnv.stdout, new RegExp(`The state at ${url.replace(/[/.]/g, '\\$&')} holds no fleets`));

    const file = join(dir, 'pgpass');
    writeFileSync(file, `${SECRET_PASSWORD}\n`);
    const fromFile = await runCli(
      dir,
      ['apply', '--auto-approve', '--state', `${url}?password_file=${file}`],
      {
        env: { PGPASSWORD: '' },
      },
    );
    t.equal(fromFile.code, 0, fromFile.stderr);

    const inUrl = await runCli(dir, [
      'state',
      'list',
      '--state',
      url.replace(`${SECRET_ROLE}@`, `${SECRET_ROLE}:${SECRET_PASSWORD}@`),
    ]);
    t.equal(inUrl.code, 1);
    t.match(inUrl.stderr, /the URL contains a password/);
    for (const r of [fromEnv, fromFile, inUrl]) t.notMatch(r.stdout + r.stderr, SECRET_PASSWORD);
  });

  t.test('an unreachable database is a STATE error naming the URL', async (t) => {
    const dir = project();
    const url = `postgres://postgres@127.0.0.1:1/nothing`;
    const r = await runCli(dir, ['state', 'list', '--state', url]);
    t.equal(r.code, 1);
    t.match(r.stderr, `cannot open state store ${url}`);
    t.match(r.stderr, /ECONNREFUSED/);
    t.notMatch(r.stderr, /^\s+at /m, 'no stack trace');
  });
}
