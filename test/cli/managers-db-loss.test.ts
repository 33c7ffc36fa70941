/**
 * The database lost under running managers (issue 13, "Connection loss"): two `runfleet watch`
 * processes on one PostgreSQL store (a cluster this file starts) run local fleets; PostgreSQL is
 * stopped with `pg_ctl stop -m immediate` (clients cut off as by a crash) while the fleet files ask
 * for more instances. Asserted from the managers' metrics, logs and the sandboxes, never from
 * durations:
 * - within the lease period both managers hold no lease (runfleet_leases_held 0) and keep running;
 * - from then on no provider mutation happens: the sandboxes stay exactly as they were through many
 *   failed lease rounds, although the files now ask for more;
 * - once PostgreSQL is back every fleet is owned again (new terms), and the managers converge the
 *   fleets on the new demand, ledger and sandboxes agreeing.
 * The fixture runs no jobs (no GitLab); what happens to jobs is covered by the SIGKILL / SIGTERM
 * tests in managers.test.ts.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import t from 'tap';
import { startPostgres } from '../helpers/topology/postgres.js';
import { spawnManager, until, untilLeaseRoundsFail, untilNoLeaseHeld } from './helpers.js';

const cluster = await startPostgres(t);
const FLEETS = 4;
const fleetFile = (idle: number) =>
  Array.from(
    { length: FLEETS },
    (_v, i) => `name: d${i}\nprovider: { type: local }\nmax_instances: 3\npolicy:\n  - idle_count: ${idle}\n`,
  ).join('---\n');

if (cluster) {
  t.test('PostgreSQL gone: managers stop changing fleets within a lease period, and resume', async (t) => {
    const db = await cluster.createDatabase();
    const url = cluster.url(db);
    const dir = t.testdir({ fleets: { 'fleets.yaml': fleetFile(1) } });
    const children: ChildProcess[] = [];
    t.teardown(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    });
    const start = () => {
      const m = spawnManager(dir, url);
      children.push(m.child);
      return m;
    };
    const managers = [start(), start()];
    const sandboxes = () =>
      Array.from({ length: FLEETS }, (_v, i) => {
        const d = join(dir, '.runfleet', 'local', `d${i}`);
        return existsSync(d) ? readdirSync(d).map((n) => `d${i}/${n}`) : [];
      })
        .flat()
        .sort();
    const pool = () => {
      const p = new pg.Pool({
        host: cluster.host,
        port: cluster.port,
        user: 'postgres',
        database: db,
        max: 1,
      });
      p.on('error', () => undefined);
      return p;
    };
    const settled = async (p: pg.Pool, perFleet: number) => {
      const owned = Number(
        (
          await p.query<{ n: string }>(
            'SELECT count(*)::text AS n FROM leases WHERE owner IS NOT NULL AND expires_at > now()',
          )
        ).rows[0]?.n,
      );
      const ready = (
        await p.query<{ fleet: string; id: string }>("SELECT fleet, id FROM instances WHERE state = 'ready'")
      ).rows
        .map((r) => `${r.fleet}/${r.id}`)
        .sort();
      const onDisk = sandboxes();
      return owned === FLEETS &&
        ready.length === FLEETS * perFleet &&
        JSON.stringify(ready) === JSON.stringify(onDisk)
        ? { ready }
        : undefined;
    };

    let p = pool();
    await until('every fleet owned, one ready instance each', () => settled(p, 1), 90_000);
    const termsBefore = new Map(
      (
        await p.query<{ fleet: string; term: string }>('SELECT fleet, term::text AS term FROM leases')
      ).rows.map((r) => [r.fleet, Number(r.term)]),
    );
    await p.end();
    await until(
      'both managers serve metrics',
      async () => (managers.every((m) => m.address()) ? true : undefined),
      30_000,
    );

    await cluster.stop('immediate');
    // More demand while the database is gone: a manager acting without its leases would create.
    writeFileSync(join(dir, 'fleets', 'fleets.yaml'), fleetFile(2));
    await untilNoLeaseHeld(managers);
    const frozen = sandboxes();
    const logThen = managers.map((m) => m.stdout().length);
    // Many lease rounds later (each one failing against the stopped database), nothing changed.
    await untilLeaseRoundsFail(managers, 20);
    t.same(sandboxes(), frozen, 'no sandbox created or removed without a lease');
    t.ok(
      managers.every((m) => m.child.exitCode === null && m.child.signalCode === null),
      'both managers keep running',
    );
    t.notMatch(
      managers.map((m, i) => m.stdout().slice(logThen[i])).join(''),
      /"event":"(increase|remove|configure|delete-group)"/,
      'no provider step logged without a lease',
    );

    await cluster.start();
    p = pool();
    t.teardown(() => p.end());
    const after = await until('every fleet owned again, on the new demand', () => settled(p, 2), 120_000);
    t.equal(after.ready.length, FLEETS * 2, 'the fleets converged on the new demand');
    const termsAfter = (
      await p.query<{ fleet: string; term: string }>('SELECT fleet, term::text AS term FROM leases')
    ).rows;
    for (const r of termsAfter) {
      t.ok(
        Number(r.term) > termsBefore.get(r.fleet)!,
        `${r.fleet}: owned again under a newer term (${r.term})`,
      );
    }

    await Promise.all(
      managers.map(
        (m) =>
          new Promise<void>((r) => {
            m.child.once('exit', () => r());
            m.child.kill('SIGTERM');
          }),
      ),
    );
  });
}
