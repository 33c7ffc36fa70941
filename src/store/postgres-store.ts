/**
 * The shared state store: PostgreSQL through a `pg` Pool that the composition root builds from the
 * `--state postgres://…` URL and hands over (the store ends it on close). Same interface, same
 * schema versions and same behaviour as the SQLite store (`sqlite-store.ts`), so every command works
 * from any machine against one database: timestamps come from the injected clock, text sorts in
 * byte order, absent fields come back absent, and the apply lock is the same single-row table with
 * the same holder message.
 */
import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import { FleetError, asError, isFleetError } from '../errors.js';
import type { AppliedFleet, LedgerInstance } from '../model/observed.js';
import { systemTime, type Clock } from '../util/time.js';
import { lockedError } from './lock-error.js';
import { checkOut, type CheckedOut } from './pg-checkout.js';
import { migratePg } from './pg-migrations.js';
import {
  applyFromRow,
  fleetFromRow,
  instanceFromRow,
  intentFromRow,
  type ApplyRow,
  type FleetRow,
  type InstanceRow,
  type IntentRow,
} from './rows.js';
import type { ApplyRecord, Intent, LockInfo, StateStore } from './store.js';

export interface PostgresStoreOptions {
  /** Time source for intent and lock timestamps. @default systemTime */
  clock?: Clock;
}

/**
 * Connects, migrates (see `pg-migrations.ts`) and returns the store; `location` is the URL without
 * password, as errors name it. On failure the pool is ended and FleetError(STATE) says why.
 */
export async function openPostgresStore(
  pool: Pool,
  location: string,
  opts: PostgresStoreOptions = {},
): Promise<PostgresStateStore> {
  // An idle connection that breaks emits on the pool; the next query reports it (as STATE).
  pool.on('error', () => undefined);
  let out: CheckedOut | undefined;
  try {
    out = await checkOut(pool);
    await migratePg(out.client, location);
    out.release();
    return new PostgresStateStore(pool, location, opts.clock ?? systemTime);
  } catch (e) {
    out?.release(true);
    await pool.end().catch(() => undefined);
    if (isFleetError(e)) throw e;
    throw pgError(pool, location, 'open', e);
  }
}

/**
 * The term this manager holds for a fleet's lease, or undefined when it holds none. A store with a
 * fence writes a fleet's instances and intents only under that term, and the database refuses the
 * write when the term is no longer the fleet's current one (`runfleet_fence`, migration 3). An
 * intent precedes a provider call, so the fence may ask more of the lease for it (`intent`).
 */
export type Fence = (fleet: string, purpose: 'write' | 'intent') => number | undefined;

export class PostgresStateStore implements StateStore {
  private closed = false;
  private fence: { owner: string; termOf: Fence } | undefined;

  constructor(
    readonly pool: Pool,
    readonly location: string,
    private readonly clock: Clock,
  ) {}

  /**
   * Every later instance and intent write is made as manager `owner` under the term `termOf`
   * answers for its fleet (see {@link Fence}); undefined: unfenced writes again.
   */
  setFence(owner: string | undefined, termOf?: Fence): void {
    this.fence = owner && termOf ? { owner, termOf } : undefined;
  }

  async listFleets(): Promise<AppliedFleet[]> {
    const rows = await this.rows<FleetRow>('read fleets', 'SELECT * FROM fleets ORDER BY name');
    return rows.map(fleetFromRow);
  }

  async putFleet(f: AppliedFleet): Promise<void> {
    await this.fenced(
      f.name,
      `write fleet ${f.name}`,
      `INSERT INTO fleets (name, spec, hash, applied_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, hash = excluded.hash,
         applied_at = excluded.applied_at`,
      [f.name, JSON.stringify(f.spec), f.hash, f.applied_at],
    );
  }

  async deleteFleet(name: string): Promise<void> {
    await this.fenced(name, `delete fleet ${name}`, 'DELETE FROM fleets WHERE name = $1', [name]);
  }

  async listInstances(fleet?: string): Promise<LedgerInstance[]> {
    const rows =
      fleet === undefined
        ? await this.rows<InstanceRow>(
            'read instances',
            'SELECT * FROM instances ORDER BY fleet, created_at, id',
          )
        : await this.rows<InstanceRow>(
            'read instances',
            'SELECT * FROM instances WHERE fleet = $1 ORDER BY created_at, id',
            [fleet],
          );
    return rows.map(instanceFromRow);
  }

  async getInstance(fleet: string, id: string): Promise<LedgerInstance | undefined> {
    const rows = await this.rows<InstanceRow>(
      `read instance ${fleet}/${id}`,
      'SELECT * FROM instances WHERE fleet = $1 AND id = $2',
      [fleet, id],
    );
    return rows[0] ? instanceFromRow(rows[0]) : undefined;
  }

  async putInstance(i: LedgerInstance): Promise<void> {
    await this.fenced(
      i.fleet,
      `write instance ${i.fleet}/${i.id}`,
      `INSERT INTO instances (fleet, id, provider, state, created_at, ready_at, use_count,
         last_used_at, health_failures, drain_reason, acquired)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       ON CONFLICT (fleet, id) DO UPDATE SET provider = excluded.provider, state = excluded.state,
         created_at = excluded.created_at, ready_at = excluded.ready_at,
         use_count = excluded.use_count, last_used_at = excluded.last_used_at,
         health_failures = excluded.health_failures, drain_reason = excluded.drain_reason,
         acquired = excluded.acquired`,
      [
        i.fleet,
        i.id,
        i.provider,
        i.state,
        i.created_at,
        i.ready_at ?? null,
        i.use_count,
        i.last_used_at ?? null,
        i.health_failures,
        i.drain_reason ?? null,
        i.acquired,
      ],
    );
  }

  async deleteInstance(fleet: string, id: string): Promise<void> {
    await this.fenced(
      fleet,
      `delete instance ${fleet}/${id}`,
      'DELETE FROM instances WHERE fleet = $1 AND id = $2',
      [fleet, id],
    );
  }

  async openIntent(fleet: string, action: string, detail: Record<string, unknown>): Promise<number> {
    const r = await this.fenced(
      fleet,
      `record intent ${action} on ${fleet}`,
      'INSERT INTO intents (fleet, action, detail, created_at) VALUES ($1, $2, $3, $4) RETURNING id',
      [fleet, action, JSON.stringify(detail), this.now()],
      'intent',
    );
    return Number((r.rows[0] as { id: number } | undefined)?.id);
  }

  async closeIntent(id: number, outcome: string): Promise<void> {
    await this.fenced(
      { intent: id },
      `close intent ${id}`,
      'UPDATE intents SET closed_at = $1, outcome = $2 WHERE id = $3 AND closed_at IS NULL',
      [this.now(), outcome, id],
    );
  }

  async listOpenIntents(): Promise<Intent[]> {
    const rows = await this.rows<IntentRow>(
      'read intents',
      'SELECT * FROM intents WHERE closed_at IS NULL ORDER BY id',
    );
    return rows.map(intentFromRow);
  }

  /**
   * Not fenced: a history record says what this process did, and is written after the provider
   * calls it describes, which were each made under the lease. Refusing it would hide a change that
   * did happen; it decides nothing (no manager reads it to plan).
   */
  async recordApply(r: ApplyRecord): Promise<number> {
    const rows = await this.rows<{ id: number }>(
      'record apply',
      `INSERT INTO applies (started_at, finished_at, plan_hash, result, summary, steps)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
      [
        r.started_at,
        r.finished_at,
        r.plan_hash,
        r.result,
        JSON.stringify(r.summary),
        JSON.stringify(r.steps),
      ],
    );
    return Number(rows[0]?.id);
  }

  async listApplies(limit?: number): Promise<ApplyRecord[]> {
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
      throw new FleetError('USAGE', `apply history limit must be a whole number >= 0, got ${limit}`);
    }
    // LIMIT NULL means no limit in PostgreSQL.
    const rows = await this.rows<ApplyRow>(
      'read apply history',
      'SELECT * FROM applies ORDER BY id DESC LIMIT $1',
      [limit ?? null],
    );
    return rows.map(applyFromRow);
  }

  async acquireLock(operation: string, who: string): Promise<LockInfo> {
    // The primary key on the one slot makes the insert the atomic test-and-set; a holder that
    // releases between our insert and our read is simply retried.
    for (let attempt = 0; attempt < 5; attempt++) {
      const taken: LockInfo = { id: randomUUID(), operation, who, created_at: this.now() };
      const inserted = await this.rows<{ id: string }>(
        'take the state lock',
        `INSERT INTO locks (slot, id, operation, who, created_at) VALUES (1, $1, $2, $3, $4)
         ON CONFLICT (slot) DO NOTHING RETURNING id`,
        [taken.id, taken.operation, taken.who, taken.created_at],
      );
      if (inserted.length === 1) return taken;
      const held = await this.currentLock();
      if (held) throw lockedError(held);
    }
    throw new FleetError(
      'STATE',
      `cannot take the state lock in state store ${this.location}: it keeps changing hands`,
      {
        hint: 'retry in a moment',
        retryable: true,
      },
    );
  }

  async releaseLock(id: string): Promise<void> {
    await this.run('release the state lock', 'DELETE FROM locks WHERE id = $1', [id]);
  }

  async forceUnlock(id: string): Promise<boolean> {
    return (await this.run('force-unlock the state', 'DELETE FROM locks WHERE id = $1', [id])) > 0;
  }

  async currentLock(): Promise<LockInfo | undefined> {
    const rows = await this.rows<LockInfo>(
      'read the state lock',
      'SELECT id, operation, who, created_at FROM locks WHERE slot = 1',
    );
    return rows[0] ? { ...rows[0] } : undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  private now(): string {
    return this.clock.now().toISOString();
  }

  /**
   * One write to a fleet's row, instances or intents. Without a fence: a plain statement (the trigger
   * still refuses it while another manager holds the fleet). With one: a transaction that names
   * the fleet and this manager's term in `runfleet.fence` first, so the database checks the term.
   */
  private async fenced(
    target: string | { intent: number },
    what: string,
    sql: string,
    params: unknown[],
    purpose: 'write' | 'intent' = 'write',
  ): Promise<QueryResult> {
    if (this.closed) throw pgError(this.pool, this.location, what, new Error('the store is closed'));
    const fence = this.fence;
    let out: CheckedOut | undefined;
    let client: PoolClient | undefined;
    let broken = false;
    try {
      if (!fence) return await this.pool.query(sql, params);
      out = await checkOut(this.pool);
      client = out.client;
      await client.query('BEGIN');
      const fleet =
        typeof target === 'string'
          ? target
          : (
              await client.query<{ fleet: string }>('SELECT fleet FROM intents WHERE id = $1', [
                target.intent,
              ])
            ).rows[0]?.fleet;
      if (fleet === undefined) {
        await client.query('COMMIT');
        return { rows: [], rowCount: 0, command: '', oid: 0, fields: [] };
      }
      const term = fence.termOf(fleet, purpose);
      if (term === undefined) throw notLeasedError(fleet, what);
      await client.query("SELECT set_config('runfleet.fence', $1, true)", [
        `${fleet}\t${term}\t${fence.owner}`,
      ]);
      const result = await client.query(sql, params);
      await client.query('COMMIT');
      return result;
    } catch (e) {
      // A statement that timed out (pg's query_timeout) may still be running on that connection:
      // it is discarded rather than rolled back (the ROLLBACK would wait behind it) and pooled.
      broken =
        client !== undefined &&
        (isQueryTimeout(e) ||
          !(await client.query('ROLLBACK').then(
            () => true,
            () => false,
          )));
      if (isFleetError(e)) throw e;
      throw pgError(this.pool, this.location, what, e);
    } finally {
      out?.release(broken);
    }
  }

  /** One statement; its rows. PostgreSQL failures become FleetError(STATE) naming `what`. */
  protected async rows<R extends QueryResultRow>(
    what: string,
    sql: string,
    params: unknown[] = [],
  ): Promise<R[]> {
    if (this.closed) throw pgError(this.pool, this.location, what, new Error('the store is closed'));
    try {
      return (await this.pool.query<R>(sql, params)).rows;
    } catch (e) {
      throw pgError(this.pool, this.location, what, e);
    }
  }

  /** One statement; the number of rows it changed. */
  protected async run(what: string, sql: string, params: unknown[] = []): Promise<number> {
    if (this.closed) throw pgError(this.pool, this.location, what, new Error('the store is closed'));
    try {
      return (await this.pool.query(sql, params)).rowCount ?? 0;
    } catch (e) {
      throw pgError(this.pool, this.location, what, e);
    }
  }
}

function notLeasedError(fleet: string, what: string): FleetError {
  return new FleetError('FENCED', `cannot ${what}: this manager holds no lease on fleet ${fleet}`, {
    hint: 'another manager owns the fleet now; it adopts the fleet’s instances and open intents',
  });
}

/** SQLSTATE classes and socket errors after which the same operation may well succeed. */
function transient(code: string): boolean {
  return (
    code.startsWith('08') || // connection exception
    code === '57P01' || // admin shutdown
    code === '57P03' || // cannot connect now (starting up)
    code === '40001' || // serialization failure
    code === '40P01' || // deadlock detected
    code === '53300' || // too many connections
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND'].includes(code)
  );
}

/** What the database's fence trigger raises for a stale or missing term (migration 3). */
export const FENCE_SQLSTATE = 'RF409';

function pgCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/**
 * FleetError(STATE) for a failed PostgreSQL operation. The message is PostgreSQL's or the socket's;
 * the password the pool was given is scrubbed from it all the same.
 */
export function pgError(pool: Pool, location: string, what: string, e: unknown): FleetError {
  const code = pgCode(e);
  let message = asError(e).message || code || 'connection failed';
  const password = (pool.options as { password?: unknown }).password;
  if (typeof password === 'string' && password.length > 0) message = message.split(password).join('***');
  if (code === FENCE_SQLSTATE) {
    return new FleetError('FENCED', `cannot ${what} in state store ${location}: ${message}`, {
      hint: 'another manager owns the fleet now; this manager stops acting on it',
      cause: e,
    });
  }
  const retryable = transient(code) || /timeout|terminated|Connection terminated/i.test(message);
  const hint =
    code === '28P01' || code === '28000'
      ? 'check the user in the URL and the password in PGPASSWORD or the password_file'
      : code === '3D000'
        ? 'create the database first (createdb), or fix its name in the URL'
        : retryable
          ? 'the database is unreachable or restarting; runfleet retries, check that PostgreSQL runs at the URL'
          : 'check the state store URL and that its user may create tables in the database';
  const action = what === 'open' ? 'open state store' : `${what} in state store`;
  return new FleetError('STATE', `cannot ${action} ${location}: ${message}`, {
    hint,
    retryable,
    cause: e,
  });
}

/** pg's client-side statement timeout (`query_timeout`, set in src/cli/root.ts) ran out. */
function isQueryTimeout(e: unknown): boolean {
  return e instanceof Error && e.message === 'Query read timeout';
}
