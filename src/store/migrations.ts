/**
 * Versioned schema of the state store, one list for both backends: every version has its SQLite
 * text (`up`) and its PostgreSQL text (`pg`), so a SQLite file and a PostgreSQL database at the same
 * version hold the same tables and columns. Migrations are append-only: a released migration is
 * never edited, a change is a new entry with the next version. The version a database is at lives in
 * the `meta` table (`key = 'schema_version'`). PostgreSQL runs them in `pg-migrations.ts`.
 */
import type { Database } from 'better-sqlite3';
import { FleetError } from '../errors.js';

export interface Migration {
  /** 1, 2, 3, ... with no gaps; the list below is sorted by it. */
  version: number;
  /** Short description, recorded in `meta` for whoever inspects the file by hand. */
  name: string;
  /** SQLite text run inside the migration's transaction. */
  up: string;
  /** PostgreSQL text of the same change; required for every released migration. */
  pg?: string;
}

/**
 * The fence trigger function as released with schema version 3 (its text is part of migration 3,
 * which never changes), and as version 4 replaces it: the fleet of a `fleets` row is its name.
 */
const FENCE_V3 = `      CREATE FUNCTION runfleet_fence() RETURNS trigger LANGUAGE plpgsql AS $fence$
      DECLARE
        row_fleet TEXT;
        fence     TEXT := current_setting('runfleet.fence', true);
        want      BIGINT;
        lease     leases%ROWTYPE;
      BEGIN
        IF TG_OP = 'DELETE' THEN row_fleet := OLD.fleet; ELSE row_fleet := NEW.fleet; END IF;
        SELECT * INTO lease FROM leases WHERE fleet = row_fleet FOR SHARE;
        IF fence IS NULL OR fence = '' THEN
          IF FOUND AND lease.owner IS NOT NULL AND lease.expires_at > now() THEN
            RAISE EXCEPTION 'fleet % is leased to manager % (term %): only its owner may write it',
              row_fleet, lease.owner, lease.term USING ERRCODE = 'RF409';
          END IF;
        ELSE
          IF split_part(fence, E'\t', 1) <> row_fleet THEN
            RAISE EXCEPTION 'write to fleet % under the fence of fleet %', row_fleet,
              split_part(fence, E'\t', 1) USING ERRCODE = 'RF409';
          END IF;
          want := split_part(fence, E'\t', 2)::BIGINT;
          IF NOT FOUND OR lease.term <> want OR lease.owner IS DISTINCT FROM split_part(fence, E'\t', 3)
             OR lease.expires_at <= now() THEN
            RAISE EXCEPTION 'stale term % for fleet % (current term %)', want, row_fleet,
              COALESCE(lease.term::TEXT, 'none') USING ERRCODE = 'RF409';
          END IF;
          IF TG_OP = 'INSERT' AND TG_TABLE_NAME = 'instances' THEN NEW.created_term := want; END IF;
          IF TG_OP = 'INSERT' AND TG_TABLE_NAME = 'intents' THEN NEW.term := want; END IF;
        END IF;
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'instances' THEN NEW.created_term := OLD.created_term; END IF;
        RETURN NEW;
      END
      $fence$;
`;
const ROW_FLEET_V3 = "IF TG_OP = 'DELETE' THEN row_fleet := OLD.fleet; ELSE row_fleet := NEW.fleet; END IF;";
const ROW_FLEET_V4 = `IF TG_TABLE_NAME = 'fleets' THEN
          IF TG_OP = 'DELETE' THEN row_fleet := OLD.name; ELSE row_fleet := NEW.name; END IF;
        ELSIF TG_OP = 'DELETE' THEN row_fleet := OLD.fleet;
        ELSE row_fleet := NEW.fleet;
        END IF;`;
const FENCE_V4 = FENCE_V3.replace('CREATE FUNCTION', 'CREATE OR REPLACE FUNCTION').replace(
  ROW_FLEET_V3,
  ROW_FLEET_V4,
);

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
    // Text that is sorted (names, ids, ISO timestamps) uses the "C" collation: byte order, as
    // SQLite compares, so listings come back in the same order from both backends.
    pg: `
      CREATE TABLE fleets (
        name       TEXT COLLATE "C" PRIMARY KEY,
        spec       TEXT NOT NULL,
        hash       TEXT NOT NULL,
        applied_at TEXT NOT NULL
      );
      CREATE TABLE instances (
        fleet           TEXT COLLATE "C" NOT NULL,
        id              TEXT COLLATE "C" NOT NULL,
        provider        TEXT NOT NULL,
        state           TEXT NOT NULL,
        created_at      TEXT COLLATE "C" NOT NULL,
        ready_at        TEXT,
        use_count       INTEGER NOT NULL DEFAULT 0,
        last_used_at    TEXT,
        health_failures INTEGER NOT NULL DEFAULT 0,
        drain_reason    TEXT,
        acquired        INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (fleet, id)
      );
      CREATE TABLE intents (
        id         INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        fleet      TEXT NOT NULL,
        action     TEXT NOT NULL,
        detail     TEXT NOT NULL,
        created_at TEXT NOT NULL,
        closed_at  TEXT,
        outcome    TEXT
      );
      CREATE INDEX intents_open ON intents (id) WHERE closed_at IS NULL;
      CREATE TABLE applies (
        id          INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        started_at  TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        plan_hash   TEXT NOT NULL,
        result      TEXT NOT NULL,
        summary     TEXT NOT NULL,
        steps       TEXT NOT NULL
      );
      CREATE TABLE locks (
        slot       INTEGER PRIMARY KEY CHECK (slot = 1),
        id         TEXT NOT NULL,
        operation  TEXT NOT NULL,
        who        TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
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
    pg: `
      DROP INDEX IF EXISTS jobs_fleet_state;
      DROP TABLE IF EXISTS jobs;
    `,
  },
  {
    version: 3,
    name: 'managers, fleet leases and fencing terms',
    // Several managers share one PostgreSQL store (docs: README "Several managers"). SQLite gets the
    // same tables and columns so both stay at one schema; only PostgreSQL enforces the fence.
    up: `
      CREATE TABLE managers (
        id           TEXT PRIMARY KEY,
        host         TEXT NOT NULL,
        pid          INTEGER NOT NULL,
        started_at   TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL,
        stopping     INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE leases (
        fleet       TEXT PRIMARY KEY,
        owner       TEXT,
        term        INTEGER NOT NULL,
        acquired_at TEXT NOT NULL,
        expires_at  TEXT NOT NULL
      );
      ALTER TABLE instances ADD COLUMN created_term INTEGER;
      ALTER TABLE intents ADD COLUMN term INTEGER;
    `,
    // The fence: a write to a fleet's instances or intents names, in the transaction setting
    // runfleet.fence, the fleet, the term its writer holds and the writer (tab-separated); the trigger refuses it (SQLSTATE
    // RF409) unless that term's lease is the fleet's current, unexpired one by the database's clock,
    // and holds the lease row FOR SHARE so no takeover commits in between. A write without the
    // setting (a single manager, the CLI) is refused while another manager holds the fleet's lease.
    pg: `
      CREATE TABLE managers (
        id           TEXT COLLATE "C" PRIMARY KEY,
        host         TEXT NOT NULL,
        pid          INTEGER NOT NULL,
        started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        stopping     BOOLEAN NOT NULL DEFAULT false
      );
      CREATE TABLE leases (
        fleet       TEXT COLLATE "C" PRIMARY KEY,
        owner       TEXT COLLATE "C",
        term        BIGINT NOT NULL CHECK (term > 0),
        acquired_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        expires_at  TIMESTAMPTZ NOT NULL
      );
      ALTER TABLE instances ADD COLUMN created_term BIGINT;
      ALTER TABLE intents ADD COLUMN term BIGINT;

${FENCE_V3}      CREATE TRIGGER instances_fence BEFORE INSERT OR UPDATE OR DELETE ON instances
        FOR EACH ROW EXECUTE FUNCTION runfleet_fence();
      CREATE TRIGGER intents_fence BEFORE INSERT OR UPDATE OR DELETE ON intents
        FOR EACH ROW EXECUTE FUNCTION runfleet_fence();
    `,
  },
  {
    version: 4,
    name: 'fleet rows fenced like the ledger',
    // A fleet row (its applied spec) is state a manager writes after a provider call (configure,
    // delete group): it gets the same fence as instances and intents. SQLite enforces no fence.
    up: `SELECT 1;`,
    pg: `
${FENCE_V4}      CREATE TRIGGER fleets_fence BEFORE INSERT OR UPDATE OR DELETE ON fleets
        FOR EACH ROW EXECUTE FUNCTION runfleet_fence();
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

export function newerSchemaError(location: string, found: number, known: number): FleetError {
  return new FleetError(
    'STATE',
    `state store ${location} has schema version ${found}, but this runfleet only knows up to version ${known}`,
    {
      hint: 'upgrade runfleet to the version that last wrote this store, or point --state at another one',
    },
  );
}
