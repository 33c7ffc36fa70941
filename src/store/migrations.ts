/**
 * Versioned schema of the SQLite state store. Migrations are append-only: a released migration is
 * never edited, a change is a new entry with the next version. The version a database is at lives in
 * the `meta` table (`key = 'schema_version'`).
 */
import type { Database } from 'better-sqlite3';
import { FleetError } from '../errors.js';

export interface Migration {
  /** 1, 2, 3, ... with no gaps; the list below is sorted by it. */
  version: number;
  /** Short description, recorded in `meta` for whoever inspects the file by hand. */
  name: string;
  /** SQL run inside the migration's transaction. */
  up: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    up: `
      CREATE TABLE fleets (
        name       TEXT PRIMARY KEY,
        spec       TEXT NOT NULL,          -- JSON of the normalised Fleet
        hash       TEXT NOT NULL,
        applied_at TEXT NOT NULL
      );

      -- No foreign key to fleets: ledger rows outlive a deleted fleet while its instances drain.
      CREATE TABLE instances (
        fleet           TEXT NOT NULL,
        id              TEXT NOT NULL,
        provider        TEXT NOT NULL,
        state           TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        ready_at        TEXT,
        use_count       INTEGER NOT NULL DEFAULT 0,
        last_used_at    TEXT,
        health_failures INTEGER NOT NULL DEFAULT 0,
        drain_reason    TEXT,
        acquired        INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (fleet, id)
      );

      CREATE TABLE intents (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        fleet      TEXT NOT NULL,
        action     TEXT NOT NULL,
        detail     TEXT NOT NULL,          -- JSON
        created_at TEXT NOT NULL,
        closed_at  TEXT,
        outcome    TEXT
      );
      CREATE INDEX intents_open ON intents (id) WHERE closed_at IS NULL;

      CREATE TABLE applies (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at  TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        plan_hash   TEXT NOT NULL,
        result      TEXT NOT NULL,
        summary     TEXT NOT NULL,         -- JSON {add, change, destroy}
        steps       TEXT NOT NULL          -- JSON string[]
      );

      -- At most one row: the CHECK on slot makes a second holder a constraint violation.
      CREATE TABLE locks (
        slot       INTEGER PRIMARY KEY CHECK (slot = 1),
        id         TEXT NOT NULL,
        operation  TEXT NOT NULL,
        who        TEXT NOT NULL,
        created_at TEXT NOT NULL
      );

      -- For the job runtime; job history outlives the instance that ran it, hence no foreign key.
      CREATE TABLE jobs (
        id             TEXT PRIMARY KEY,
        fleet          TEXT NOT NULL,
        instance       TEXT,
        state          TEXT NOT NULL,
        created_at     TEXT NOT NULL,
        started_at     TEXT,
        finished_at    TEXT,
        failure_reason TEXT
      );
      CREATE INDEX jobs_fleet_state ON jobs (fleet, state);
    `,
  },
  {
    version: 2,
    name: 'drop the unused jobs table',
    // Nothing ever wrote it: job outcomes live at GitLab, and in the manager's logs and metrics.
    up: `
      DROP INDEX IF EXISTS jobs_fleet_state;
      DROP TABLE IF EXISTS jobs;
    `,
  },
];

/** The schema version this build writes and understands. */
export const LATEST_SCHEMA_VERSION: number = migrations[migrations.length - 1]?.version ?? 0;

const META_DDL = 'CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)';

/** The schema version recorded in `db`; 0 for a database runfleet never touched. */
export function readSchemaVersion(db: Database): number {
  const hasMeta = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'")
    .get() as unknown;
  if (!hasMeta) return 0;
  const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
    { value: string } | undefined;
  return row ? Number(row.value) : 0;
}

/**
 * Brings `db` up to {@link LATEST_SCHEMA_VERSION}, one migration per IMMEDIATE transaction. The
 * version is re-read inside each transaction, so two processes opening a fresh file at once apply
 * every migration exactly once. Returns the version the database is at afterwards.
 *
 * Throws FleetError(STATE) when the database is newer than this build: writing to it could corrupt
 * data a newer runfleet relies on.
 */
export function migrate(db: Database, location: string, list: readonly Migration[] = migrations): number {
  const latest = list[list.length - 1]?.version ?? 0;
  for (;;) {
    const step = db.transaction((): number | undefined => {
      db.exec(META_DDL);
      const current = readSchemaVersion(db);
      if (current > latest) throw newerSchemaError(location, current, latest);
      if (current === latest) return undefined;
      const next = list.find((m) => m.version === current + 1);
      if (!next) throw new FleetError('INTERNAL', `no migration to schema version ${current + 1}`);
      db.exec(next.up);
      const upsert = db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      );
      upsert.run('schema_version', String(next.version));
      upsert.run(`migration_${next.version}`, next.name);
      return next.version;
    });
    const applied = step.immediate();
    if (applied === undefined) return readSchemaVersion(db);
  }
}

function newerSchemaError(location: string, found: number, known: number): FleetError {
  return new FleetError(
    'STATE',
    `state store ${location} has schema version ${found}, but this runfleet only knows up to version ${known}`,
    {
      hint: 'upgrade runfleet to the version that last wrote this file, or point --state at another file',
    },
  );
}
