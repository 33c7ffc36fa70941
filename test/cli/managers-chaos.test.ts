/**
 * Chaos on three `runfleet watch` processes sharing one PostgreSQL store (a cluster this file
 * starts): local fleets whose idle_count changes while, every few seconds, one manager is
 * SIGKILLed (and restarted) or SIGSTOPped (and continued later). Shortened for the suite (12
 * fleets, 40 s, an event every 4 s); the full size is
 *
 *   RUNFLEET_CHAOS_FLEETS=30 RUNFLEET_CHAOS_SECONDS=180 RUNFLEET_CHAOS_EVERY_S=10 npx tap test/cli/managers-chaos.test.ts
 *
 * (RUNFLEET_CHAOS_LOGS=DIR keeps each manager's JSON log there; without it the logs go to the
 * test's directory, and the last lines of a manager that does not stop are printed). Every wait
 * is bounded, so a stuck manager fails the test with its log rather than running into tap's
 * timeout with nothing to show. The lease rhythm is shortened
 * through RUNFLEET_LEASE_RENEW_MS / _TTL_MS. Asserts, from the database and the sandboxes, never
 * from durations:
 * - never two owners acting on one fleet: per fleet, intents (each stamped by the database with
 *   its writer's term) never go back to an older term;
 * - never more sandboxes than max_instances in any fleet at any sample;
 * - nothing lost or leaked: at the end the ledger and the sandboxes hold the same instances;
 * - no fleet is ever planned as deleted (all stay defined);
 * - every fleet is owned again after the chaos (the longest wait is printed).
 * It also prints where the lease acquisitions went (every acquisition is one term): owner changes
 * seen by the samples, and re-acquisitions that a sample saw as no change of owner (churn).
 */
import type { ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import t from 'tap';
import { startPostgres } from '../helpers/topology/postgres.js';
import { spawnManager, until } from './helpers.js';

const cluster = await startPostgres(t);
const FLEETS = Number(process.env['RUNFLEET_CHAOS_FLEETS'] ?? 12);
const SECONDS = Number(process.env['RUNFLEET_CHAOS_SECONDS'] ?? 40);
const EVERY_MS = Number(process.env['RUNFLEET_CHAOS_EVERY_S'] ?? 4) * 1000;
const LOGS = process.env['RUNFLEET_CHAOS_LOGS'];
const MAX = 2;

const fleetFile = (idle: (i: number) => number) =>
  Array.from(
    { length: FLEETS },
    (_v, i) =>
      `name: c${i}\nprovider: { type: local }\nmax_instances: ${MAX}\npolicy:\n  - idle_count: ${idle(i)}\n`,
  ).join('---\n');

if (cluster) {
  t.test('three managers under SIGKILL / SIGSTOP: one owner per fleet, nothing lost', async (t) => {
    const db = await cluster.createDatabase();
    const url = cluster.url(db);
    const dir = t.testdir({ fleets: { 'fleets.yaml': fleetFile(() => 1) } });
    const pool = new pg.Pool({
      host: cluster.host,
      port: cluster.port,
      user: 'postgres',
      database: db,
      max: 2,
      // A sample that hangs fails the test (with the managers' logs) instead of waiting forever.
      query_timeout: 10_000,
    });
    t.teardown(() => pool.end());

    const all: ChildProcess[] = [];
    t.teardown(() => {
      for (const c of all) {
        if (c.exitCode === null && c.signalCode === null) {
          c.kill('SIGCONT');
          c.kill('SIGKILL');
        }
      }
    });
    let spawned = 0;
    const logDir = LOGS ?? join(dir, 'logs');
    mkdirSync(logDir, { recursive: true });
    const logOf = new Map<ChildProcess, string>();
    const startManager = () => {
      const file = join(logDir, `manager-${++spawned}.log`);
      const log = openSync(file, 'w');
      const { child } = spawnManager(dir, url, { log });
      closeSync(log);
      logOf.set(child, file);
      all.push(child);
      return child;
    };
    const logTail = (c: ChildProcess) =>
      readFileSync(logOf.get(c)!, 'utf8').trim().split('\n').slice(-15).join('\n');
    const slots: { child: ChildProcess; stopped: boolean }[] = [0, 1, 2].map(() => ({
      child: startManager(),
      stopped: false,
    }));

    const sandboxes = (fleet: string) => {
      const d = join(dir, '.runfleet', 'local', fleet);
      return existsSync(d) ? readdirSync(d).filter((n) => !n.startsWith('.')) : [];
    };
    const ownedFleets = async () =>
      Number(
        (
          await pool.query<{ n: string }>(
            'SELECT count(*)::text AS n FROM leases WHERE owner IS NOT NULL AND expires_at > now()',
          )
        ).rows[0]?.n,
      );
    const withLogs = <T>(p: Promise<T>): Promise<T> =>
      p.catch((e: unknown) => {
        for (const s of slots) t.comment(`manager ${s.child.pid}'s log ends:\n${logTail(s.child)}`);
        throw e;
      });
    await withLogs(
      until('every fleet owned', async () => ((await ownedFleets()) === FLEETS ? true : undefined), 60_000),
    );

    // Where acquisitions go: per fleet the owner and term of the last sample.
    const seen = new Map<string, { owner: string | null; term: number }>();
    let moves = 0;
    let sameOwner = 0;
    const sampleTerms = async () => {
      const rows = (
        await pool.query<{ fleet: string; owner: string | null; term: string }>(
          'SELECT fleet, owner, term::text AS term FROM leases',
        )
      ).rows;
      for (const r of rows) {
        const term = Number(r.term);
        const before = seen.get(r.fleet);
        if (r.owner === null) continue;
        if (before && term > before.term) {
          if (before.owner === r.owner) sameOwner += term - before.term;
          else {
            moves++;
            sameOwner += term - before.term - 1;
          }
        }
        seen.set(r.fleet, { owner: r.owner, term });
      }
    };
    await sampleTerms();

    let over = 0;
    let longestUnowned = 0;
    let unownedSince: number | undefined;
    const end = Date.now() + SECONDS * 1000;
    let round = 0;
    while (Date.now() < end) {
      const victim = slots[round % slots.length]!;
      if (victim.stopped) {
        victim.child.kill('SIGCONT');
        victim.stopped = false;
      } else if (round % 2 === 0) {
        victim.child.kill('SIGKILL');
        victim.child = startManager();
      } else {
        victim.child.kill('SIGSTOP');
        victim.stopped = true;
      }
      // Changing demand: every other round a different idle_count.
      writeFileSync(
        join(dir, 'fleets', 'fleets.yaml'),
        fleetFile((i) => (i + round) % (MAX + 1)),
      );
      round++;
      const until_ = Date.now() + EVERY_MS;
      while (Date.now() < until_) {
        for (let i = 0; i < FLEETS; i++) if (sandboxes(`c${i}`).length > MAX) over++;
        const owned = await ownedFleets();
        await sampleTerms();
        if (owned < FLEETS) unownedSince ??= Date.now();
        else if (unownedSince !== undefined) {
          longestUnowned = Math.max(longestUnowned, Date.now() - unownedSince);
          unownedSince = undefined;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    for (const s of slots) if (s.stopped) s.child.kill('SIGCONT');
    const settle = Date.now();
    await withLogs(
      until(
        'every fleet owned again',
        async () => ((await ownedFleets()) === FLEETS ? true : undefined),
        60_000,
      ),
    );
    longestUnowned = Math.max(longestUnowned, Date.now() - settle);
    await sampleTerms();
    const acquisitions = [...seen.values()].reduce((n, s) => n + s.term, 0) - FLEETS;
    t.comment(
      `chaos: ${round} rounds over ${SECONDS}s, ${FLEETS} fleets; longest time with a fleet unowned ${longestUnowned} ms`,
    );
    t.comment(
      `chaos: ${acquisitions} lease acquisitions after the first ones: ${moves} owner changes seen, ` +
        `${sameOwner} re-acquisitions not seen as a change of owner (churn)`,
    );
    t.equal(over, 0, 'never more sandboxes than max_instances in a fleet');

    // Never two owners acting on one fleet: the database stamps each intent with its writer's
    // term, and within a fleet terms only grow in the order intents were written.
    const intents = (
      await pool.query<{ fleet: string; term: string | null }>(
        'SELECT fleet, term::text AS term FROM intents ORDER BY id',
      )
    ).rows;
    t.ok(intents.length > 0, `${intents.length} intents written`);
    const last = new Map<string, number>();
    const backwards: string[] = [];
    for (const i of intents) {
      const term = Number(i.term);
      if (i.term === null) backwards.push(`${i.fleet}: an intent without a term`);
      if (term < (last.get(i.fleet) ?? 0))
        backwards.push(`${i.fleet}: term ${term} after ${last.get(i.fleet)}`);
      last.set(i.fleet, Math.max(term, last.get(i.fleet) ?? 0));
    }
    t.same(backwards, [], 'no write of an older term after a newer one');
    // Every fleet stays defined throughout: a new owner that planned one as deleted (seeing it
    // applied before its definition) would have removed its instances and its group.
    const deletions = (
      await pool.query<{ fleet: string }>("SELECT fleet FROM intents WHERE action = 'delete-group'")
    ).rows.map((r) => r.fleet);
    t.same(deletions, [], 'no fleet ever planned as deleted');

    // Stop everyone gracefully (a stop takes the 2 s grace and a lease round; one that has not
    // exited in 60 s is stuck, and its log says where), then ledger and sandboxes must agree.
    const live = slots.map((s) => s.child);
    const stuck = (
      await Promise.all(
        live.map(
          (c) =>
            new Promise<ChildProcess | undefined>((r) => {
              if (c.exitCode !== null || c.signalCode !== null) return r(undefined);
              const timer = setTimeout(() => r(c), 60_000);
              c.once('exit', () => {
                clearTimeout(timer);
                r(undefined);
              });
              c.kill('SIGTERM');
            }),
        ),
      )
    ).filter((c) => c !== undefined);
    for (const c of stuck)
      t.comment(`manager ${c.pid} did not stop within 60 s of SIGTERM; its log ends:\n${logTail(c)}`);
    t.equal(stuck.length, 0, 'every manager stops on SIGTERM');
    if (stuck.length > 0) return;
    const ledger = (
      await pool.query<{ fleet: string; id: string }>('SELECT fleet, id FROM instances ORDER BY fleet, id')
    ).rows.map((r) => `${r.fleet}/${r.id}`);
    const onDisk = Array.from({ length: FLEETS }, (_v, i) => sandboxes(`c${i}`).map((id) => `c${i}/${id}`))
      .flat()
      .sort();
    t.ok(ledger.length > 0, `${ledger.length} instances at the end`);
    t.same(ledger.sort(), onDisk, 'ledger and sandboxes hold the same instances: none lost, none leaked');
  });
}
