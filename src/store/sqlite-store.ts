/**
 * The embedded state store: one SQLite file (better-sqlite3, WAL). Several runfleet processes may
 * open the same file; writers queue on SQLite's busy handler for up to `busyTimeoutMs` instead of
 * failing, and the apply lock is a single-row table written inside an IMMEDIATE transaction.
 *
 * better-sqlite3 is synchronous; the async methods exist because the `StateStore` seam is shared
 * with network backends. Each method's work is one statement or one transaction, so a resolved
 * promise means the write is committed (synchronous = FULL, the default, keeps it durable).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { FleetError, asError, isFleetError } from '../errors.js';
import type { AppliedFleet, LedgerInstance } from '../model/observed.js';
import { systemTime, type Clock } from '../util/time.js';
import { lockedError } from './lock-error.js';
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
import { migrate } from './migrations.js';
import type { ApplyRecord, Intent, LockInfo, StateStore } from './store.js';

export interface SqliteStoreOptions {
  /** Time source for intent and lock timestamps. @default systemTime */
  clock?: Clock;
  /** How long a write waits for another process's transaction before failing. @default 5000 */
  busyTimeoutMs?: number;
}

/** Where the CLI keeps state unless told otherwise (relative to the working directory). */
export const DEFAULT_STATE_PATH = '.runfleet/state.db';

/**
 * Opens (creating if needed, with its parent directory) and migrates the store at `path`.
 * `':memory:'` gives a private in-memory store, handy in tests of other modules.
 *
 * Throws FleetError(STATE) naming the file when it cannot be created, is not a SQLite database,
 * is damaged, or was written by a newer runfleet.
 */
export async function openSqliteStore(path: string, opts: SqliteStoreOptions = {}): Promise<StateStore> {
  const inMemory = path === ':memory:';
  let db: Db | undefined;
  try {
    if (!inMemory) mkdirSync(dirname(path), { recursive: true });
    db = new Database(path, { timeout: opts.busyTimeoutMs ?? 5000 });
    // Reading the journal mode is the first real read of the file: a non-database fails here.
    if (!inMemory) db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    migrate(db, path);
    return new SqliteStateStore(db, path, opts.clock ?? systemTime);
  } catch (e) {
    db?.close();
    if (isFleetError(e)) throw e;
    throw openError(path, e);
  }
}

/** Every statement the store runs, prepared once per connection. */
function prepareStatements(db: Db) {
  const p = (s: string): Statement => db.prepare(s);
  return {
    listFleets: p('SELECT * FROM fleets ORDER BY name'),
    putFleet: p(
      `INSERT INTO fleets (name, spec, hash, applied_at) VALUES (@name, @spec, @hash, @applied_at)
       ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, hash = excluded.hash,
         applied_at = excluded.applied_at`,
    ),
    deleteFleet: p('DELETE FROM fleets WHERE name = ?'),
    listInstances: p('SELECT * FROM instances ORDER BY fleet, created_at, id'),
    listFleetInstances: p('SELECT * FROM instances WHERE fleet = ? ORDER BY created_at, id'),
    getInstance: p('SELECT * FROM instances WHERE fleet = ? AND id = ?'),
    putInstance: p(
      `INSERT OR REPLACE INTO instances (fleet, id, provider, state, created_at, ready_at, use_count,
         last_used_at, health_failures, drain_reason, acquired)
       VALUES (@fleet, @id, @provider, @state, @created_at, @ready_at, @use_count, @last_used_at,
         @health_failures, @drain_reason, @acquired)`,
    ),
    deleteInstance: p('DELETE FROM instances WHERE fleet = ? AND id = ?'),
    openIntent: p('INSERT INTO intents (fleet, action, detail, created_at) VALUES (?, ?, ?, ?)'),
    closeIntent: p('UPDATE intents SET closed_at = ?, outcome = ? WHERE id = ? AND closed_at IS NULL'),
    listOpenIntents: p('SELECT * FROM intents WHERE closed_at IS NULL ORDER BY id'),
    recordApply: p(
      `INSERT INTO applies (started_at, finished_at, plan_hash, result, summary, steps)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    // LIMIT -1 means no limit in SQLite.
    listApplies: p('SELECT * FROM applies ORDER BY id DESC LIMIT ?'),
    currentLock: p('SELECT id, operation, who, created_at FROM locks WHERE slot = 1'),
    insertLock: p('INSERT INTO locks (slot, id, operation, who, created_at) VALUES (1, ?, ?, ?, ?)'),
    deleteLock: p('DELETE FROM locks WHERE id = ?'),
  };
}

class SqliteStateStore implements StateStore {
  private readonly sql: ReturnType<typeof prepareStatements>;

  constructor(
    private readonly db: Db,
    readonly location: string,
    private readonly clock: Clock,
  ) {
    this.sql = prepareStatements(db);
  }

  listFleets(): Promise<AppliedFleet[]> {
    return this.guard('read fleets', () => (this.sql.listFleets.all() as FleetRow[]).map(fleetFromRow));
  }

  putFleet(fleet: AppliedFleet): Promise<void> {
    return this.guard(`write fleet ${fleet.name}`, () => {
      this.sql.putFleet.run({ ...fleet, spec: JSON.stringify(fleet.spec) });
    });
  }

  deleteFleet(name: string): Promise<void> {
    return this.guard(`delete fleet ${name}`, () => {
      this.sql.deleteFleet.run(name);
    });
  }

  listInstances(fleet?: string): Promise<LedgerInstance[]> {
    return this.guard('read instances', () => {
      const rows = (
        fleet === undefined ? this.sql.listInstances.all() : this.sql.listFleetInstances.all(fleet)
      ) as InstanceRow[];
      return rows.map(instanceFromRow);
    });
  }

  getInstance(fleet: string, id: string): Promise<LedgerInstance | undefined> {
    return this.guard(`read instance ${fleet}/${id}`, () => {
      const row = this.sql.getInstance.get(fleet, id) as InstanceRow | undefined;
      return row ? instanceFromRow(row) : undefined;
    });
  }

  putInstance(i: LedgerInstance): Promise<void> {
    return this.guard(`write instance ${i.fleet}/${i.id}`, () => {
      this.sql.putInstance.run({
        ...i,
        ready_at: i.ready_at ?? null,
        last_used_at: i.last_used_at ?? null,
        drain_reason: i.drain_reason ?? null,
      });
    });
  }

  deleteInstance(fleet: string, id: string): Promise<void> {
    return this.guard(`delete instance ${fleet}/${id}`, () => {
      this.sql.deleteInstance.run(fleet, id);
    });
  }

  openIntent(fleet: string, action: string, detail: Record<string, unknown>): Promise<number> {
    return this.guard(`record intent ${action} on ${fleet}`, () => {
      const r = this.sql.openIntent.run(fleet, action, JSON.stringify(detail), this.now());
      return Number(r.lastInsertRowid);
    });
  }

  closeIntent(id: number, outcome: string): Promise<void> {
    return this.guard(`close intent ${id}`, () => {
      this.sql.closeIntent.run(this.now(), outcome, id);
    });
  }

  listOpenIntents(): Promise<Intent[]> {
    return this.guard('read intents', () =>
      (this.sql.listOpenIntents.all() as IntentRow[]).map(intentFromRow),
    );
  }

  recordApply(r: ApplyRecord): Promise<number> {
    return this.guard('record apply', () => {
      const res = this.sql.recordApply.run(
        r.started_at,
        r.finished_at,
        r.plan_hash,
        r.result,
        JSON.stringify(r.summary),
        JSON.stringify(r.steps),
      );
      return Number(res.lastInsertRowid);
    });
  }

  listApplies(limit?: number): Promise<ApplyRecord[]> {
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
      return Promise.reject(
        new FleetError('USAGE', `apply history limit must be a whole number >= 0, got ${limit}`),
      );
    }
    return this.guard('read apply history', () =>
      (this.sql.listApplies.all(limit ?? -1) as ApplyRow[]).map(applyFromRow),
    );
  }

  acquireLock(operation: string, who: string): Promise<LockInfo> {
    return this.guard('take the state lock', () => {
      // IMMEDIATE takes SQLite's write lock before the read, so check-then-insert cannot interleave
      // with another process; the single-row CHECK is a second line of defence.
      const take = this.db.transaction((): { held: LockInfo } | { taken: LockInfo } => {
        const held = this.sql.currentLock.get() as LockInfo | undefined;
        if (held) return { held };
        const taken: LockInfo = { id: randomUUID(), operation, who, created_at: this.now() };
        this.sql.insertLock.run(taken.id, taken.operation, taken.who, taken.created_at);
        return { taken };
      });
      const outcome = take.immediate();
      if ('held' in outcome) throw lockedError(outcome.held);
      return outcome.taken;
    });
  }

  releaseLock(id: string): Promise<void> {
    return this.guard('release the state lock', () => {
      this.sql.deleteLock.run(id);
    });
  }

  forceUnlock(id: string): Promise<boolean> {
    return this.guard('force-unlock the state', () => this.sql.deleteLock.run(id).changes > 0);
  }

  currentLock(): Promise<LockInfo | undefined> {
    return this.guard('read the state lock', () => {
      const row = this.sql.currentLock.get() as LockInfo | undefined;
      return row ? { ...row } : undefined;
    });
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  private now(): string {
    return this.clock.now().toISOString();
  }

  /** Runs one synchronous store operation, turning SQLite failures into FleetError(STATE). */
  private async guard<T>(what: string, fn: () => T): Promise<T> {
    try {
      return fn();
    } catch (e) {
      if (isFleetError(e)) throw e;
      throw operationError(this.location, what, e);
    }
  }
}

function sqliteCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function operationError(location: string, what: string, e: unknown): FleetError {
  const code = sqliteCode(e) ?? '';
  const busy = code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
  return new FleetError('STATE', `cannot ${what} in state store ${location}: ${asError(e).message}`, {
    hint: busy
      ? 'another runfleet process kept the state store busy; retry in a moment'
      : 'check the disk and the file permissions of the state store',
    retryable: busy,
    cause: e,
  });
}

function openError(location: string, e: unknown): FleetError {
  const code = sqliteCode(e) ?? '';
  const damaged = code.startsWith('SQLITE_NOTADB') || code.startsWith('SQLITE_CORRUPT');
  const busy = code.startsWith('SQLITE_BUSY');
  const hint = damaged
    ? 'the file is not a runfleet state database or is damaged: restore a backup, or move it aside to start with empty state'
    : busy
      ? 'another runfleet process kept the state store busy; retry in a moment'
      : 'check that the path is a file (not a directory) and that runfleet may read and write it and its directory';
  return new FleetError('STATE', `cannot open state store ${location}: ${asError(e).message}`, {
    hint,
    retryable: busy,
    cause: e,
  });
}
