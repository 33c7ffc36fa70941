/**
 * bench/failover: several `runfleet watch` processes on one PostgreSQL store (a cluster started
 * here, loopback only), each figure beside a floor measured or fixed in the same run.
 *
 * kill     takeover time after SIGKILL of a fleet's owner: from the kill until another manager holds
 *          the fleet's lease (median, max over RUNS). Floor: the lease TTL, which must run out
 *          (target ≈ 20 s with the default 5 s / 15 s rhythm).
 * term     the same after SIGTERM (hand-over: release + NOTIFY). Floor: a NOTIFY round trip between
 *          two connections, measured here (target < 1 s).
 * queries  statements per second per manager with 3 managers and 1,000 fleets, idle (no jobs),
 *          counted by pg_stat_statements over a window. Floor: the lease keeper's own rhythm
 *          (heartbeat, renew, members, leases: 4 statements per renew period). Target well under 50.
 *
 * Run: npm run bench:failover [-- phase…]   RUNS=20 (default 5), WINDOW_S=60 (default 30);
 * RUNFLEET_LEASE_RENEW_MS / _TTL_MS are passed on to the managers when set.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { startPostgres } from '../test/helpers/topology/postgres.js';

const BIN = resolve(import.meta.dirname, '../bin/runfleet.js');
const RUNS = Number(process.env['RUNS'] ?? 5);
const WINDOW_S = Number(process.env['WINDOW_S'] ?? 30);
const TTL_MS = Number(process.env['RUNFLEET_LEASE_TTL_MS'] ?? 15_000);
const phases = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['kill', 'term', 'queries'];

const teardowns: (() => unknown)[] = [];
const shim = {
  skip: (m: string) => {
    throw new Error(m);
  },
  fail: (m: string) => {
    throw new Error(m);
  },
  teardown: (fn: () => unknown) => void teardowns.push(fn),
};
const cluster = await startPostgres(shim as never, ['shared_preload_libraries=pg_stat_statements']);
if (!cluster) throw new Error('no PostgreSQL');
const children: ChildProcess[] = [];
const cleanup = async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const fn of teardowns.reverse()) await fn();
};
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function project(fleets: number) {
  const db = await cluster!.createDatabase('bench');
  const dir = mkdtempSync(join(tmpdir(), 'runfleet-failover-'));
  teardowns.push(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'fleets'));
  writeFileSync(
    join(dir, 'fleets', 'fleets.yaml'),
    Array.from(
      { length: fleets },
      (_v, i) => `name: b${i}\nprovider: { type: local }\nmax_instances: 1\npolicy:\n  - idle_count: 0\n`,
    ).join('---\n'),
  );
  const pool = new pg.Pool({
    host: cluster!.host,
    port: cluster!.port,
    user: 'postgres',
    database: db,
    max: 2,
  });
  teardowns.push(() => pool.end());
  const ready = new Set<ChildProcess>();
  const start = () => {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    const child = spawn(
      process.execPath,
      [BIN, 'watch', '--listen', '127.0.0.1:0', '--grace', '1s', '--state', cluster!.url(db)],
      { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    // Ready once it says it manages the fleets: from then on SIGTERM is a hand-over (before that
    // the signal handler is not installed yet and SIGTERM simply ends the process).
    child.stderr?.on('data', (d: Buffer) => {
      if (d.toString().includes('runfleet watch: managing')) ready.add(child);
      if (process.env['BENCH_DEBUG']) process.stderr.write(d);
    });
    children.push(child);
    return child;
  };
  const owner = async (fleet: string) =>
    (
      await pool.query<{ owner: string | null }>(
        'SELECT owner FROM leases WHERE fleet = $1 AND owner IS NOT NULL AND expires_at > now()',
        [fleet],
      )
    ).rows[0]?.owner ?? undefined;
  const pidOf = async (id: string) =>
    (await pool.query<{ pid: number }>('SELECT pid FROM managers WHERE id = $1', [id])).rows[0]?.pid;
  const owned = async () =>
    Number(
      (
        await pool.query<{ n: string }>(
          'SELECT count(*)::text AS n FROM leases WHERE owner IS NOT NULL AND expires_at > now()',
        )
      ).rows[0]?.n,
    );
  const waitFor = async (what: string, fn: () => Promise<boolean>, timeoutMs = 120_000) => {
    const end = Date.now() + timeoutMs;
    // Errors (tables not created yet by the first manager) count as "not yet".
    while (!(await fn().catch(() => false))) {
      if (Date.now() > end) {
        const leases = await pool.query('SELECT fleet, owner, term, expires_at > now() AS live FROM leases');
        const members = await pool.query(
          'SELECT id, pid, stopping, now() - heartbeat_at AS age FROM managers',
        );
        throw new Error(
          `timed out waiting for ${what}: ${JSON.stringify(leases.rows)} ${JSON.stringify(members.rows)}`,
        );
      }
      await sleep(20);
    }
  };
  return { db, pool, start, owner, pidOf, owned, waitFor, ready };
}

async function takeover(signal: 'SIGKILL' | 'SIGTERM'): Promise<number[]> {
  const p = await project(4);
  const procs = [p.start(), p.start()];
  const times: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    await p.waitFor('b0 owned by one of two live managers', async () => {
      const ages = (
        await p.pool.query<{ age_ms: number }>(
          'SELECT (extract(epoch FROM now() - heartbeat_at) * 1000)::float8 AS age_ms FROM managers',
        )
      ).rows;
      const live = ages.filter((a) => a.age_ms < TTL_MS).length;
      return (
        live === 2 &&
        procs.every((c) => p.ready.has(c)) &&
        (await p.owner('b0')) !== undefined &&
        (await p.owned()) === 4
      );
    });
    const before = (await p.owner('b0'))!;
    const pid = await p.pidOf(before);
    const victim = procs.find((c) => c.pid === pid)!;
    const exited = new Promise((r) => victim.once('exit', r));
    const t0 = performance.now();
    victim.kill(signal);
    await p.waitFor('b0 re-owned', async () => {
      const now = await p.owner('b0');
      return now !== undefined && now !== before;
    });
    times.push(performance.now() - t0);
    await exited;
    // Whatever is left of the victim in the member list is cleared by the next start.
    procs[procs.indexOf(victim)] = p.start();
  }
  for (const c of procs) c.kill('SIGTERM');
  return times;
}

async function notifyFloor(): Promise<number> {
  const a = new pg.Client({
    host: cluster!.host,
    port: cluster!.port,
    user: 'postgres',
    database: 'postgres',
  });
  const b = new pg.Client({
    host: cluster!.host,
    port: cluster!.port,
    user: 'postgres',
    database: 'postgres',
  });
  await a.connect();
  await b.connect();
  await a.query('LISTEN floor');
  const samples: number[] = [];
  for (let i = 0; i < 20; i++) {
    const got = new Promise<void>((r) => a.once('notification', () => r()));
    const t0 = performance.now();
    await b.query("SELECT pg_notify('floor', 'x')");
    await got;
    samples.push(performance.now() - t0);
  }
  await a.end();
  await b.end();
  return median(samples);
}

if (phases.includes('kill')) {
  const times = await takeover('SIGKILL');
  console.log(
    `kill: takeover after SIGKILL over ${RUNS} runs: median ${fmt(median(times))}, max ${fmt(Math.max(...times))}` +
      ` (floor: lease TTL ${fmt(TTL_MS)}; target ≈ 20 s)`,
  );
}
if (phases.includes('term')) {
  const floor = await notifyFloor();
  const times = await takeover('SIGTERM');
  console.log(
    `term: takeover after SIGTERM over ${RUNS} runs: median ${fmt(median(times))}, max ${fmt(Math.max(...times))}` +
      ` (floor: NOTIFY round trip ${floor.toFixed(2)} ms; target < 1 s)`,
  );
}
if (phases.includes('queries')) {
  const p = await project(1000);
  const managers = [p.start(), p.start(), p.start()];
  await p.waitFor('1,000 fleets owned', async () => (await p.owned()) === 1000, 300_000);
  // Idle means converged: every fleet's spec applied (its first pass's configure step) and no intent
  // open. On a loaded machine that takes far longer than a fixed pause, and a window that still
  // holds the first passes counts them, not the idle rhythm.
  await p.waitFor(
    'every fleet applied, no intent open',
    async () =>
      (
        await p.pool.query<{ ok: boolean }>(
          `SELECT (SELECT count(*) FROM fleets) = 1000 AND NOT EXISTS (SELECT 1 FROM intents WHERE closed_at IS NULL) AS ok`,
        )
      ).rows[0]?.ok === true,
    600_000,
  );
  await sleep(5000); // and the passes those last steps triggered
  await p.pool.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  await p.pool.query('SELECT pg_stat_statements_reset()');
  await sleep(WINDOW_S * 1000);
  const rows = (
    await p.pool.query<{ calls: string; query: string }>(
      `SELECT s.calls::text AS calls, s.query FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
       WHERE d.datname = $1 AND s.query NOT ILIKE '%pg_stat_statements%' ORDER BY s.calls DESC`,
      [p.db],
    )
  ).rows;
  const total = rows.reduce((n, r) => n + Number(r.calls), 0);
  const renewS = Number(process.env['RUNFLEET_LEASE_RENEW_MS'] ?? 5000) / 1000;
  console.log(
    `queries: ${(total / managers.length / WINDOW_S).toFixed(2)} statements/s per manager with 3 managers, ` +
      `1,000 idle fleets, over ${WINDOW_S} s (floor: lease rhythm ${(4 / renewS).toFixed(2)}/s; target well under 50/s)`,
  );
  for (const r of rows.slice(0, 6))
    console.log(`  ${r.calls.padStart(7)}  ${r.query.replace(/\s+/g, ' ').slice(0, 90)}`);
  for (const c of managers) c.kill('SIGTERM');
  await sleep(3000);
}
await cleanup();
