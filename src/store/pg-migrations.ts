/**
 * Runs the state store's migrations (`migrations.ts`, the `pg` text of each) on PostgreSQL. All
 * pending versions run in one transaction that first takes a transaction-scoped advisory lock, so
 * managers starting at once against a fresh database queue on the lock: the first migrates, the
 * others then find the latest version and do nothing. PostgreSQL's DDL is transactional, so a
 * failing migration leaves the database exactly at its old version.
 */
import type { ClientBase } from 'pg';
import { FleetError } from '../errors.js';
import { migrations as allMigrations, newerSchemaError, type Migration } from './migrations.js';

/** pg_advisory_xact_lock key of runfleet's schema changes ("runfleet" as bytes, truncated). */
export const MIGRATION_LOCK_KEY = 0x72756e666c6565n;

const META_DDL = 'CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)';

/** The schema version recorded in the database; 0 for a database runfleet never touched. */
export async function readPgSchemaVersion(db: ClientBase): Promise<number> {
  const meta = await db.query<{ t: string | null }>("SELECT to_regclass('meta')::text AS t");
  if (!meta.rows[0]?.t) return 0;
  const row = await db.query<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'");
  return row.rows[0] ? Number(row.rows[0].value) : 0;
}

/**
 * Brings the database up to the list's latest version; returns the version it is at afterwards.
 * Throws FleetError(STATE) when the database is newer than this build.
 */
export async function migratePg(
  db: ClientBase,
  location: string,
  list: readonly Migration[] = allMigrations,
): Promise<number> {
  const latest = list[list.length - 1]?.version ?? 0;
  await db.query('BEGIN');
  try {
    await db.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
    await db.query(META_DDL);
    let current = await readPgSchemaVersion(db);
    if (current > latest) throw newerSchemaError(location, current, latest);
    while (current < latest) {
      const next = list.find((m) => m.version === current + 1);
      if (!next?.pg)
        throw new FleetError('INTERNAL', `no PostgreSQL migration to schema version ${current + 1}`);
      await db.query(next.pg);
      const upsert =
        'INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value';
      await db.query(upsert, ['schema_version', String(next.version)]);
      await db.query(upsert, [`migration_${next.version}`, next.name]);
      current = next.version;
    }
    await db.query('COMMIT');
    return current;
  } catch (e) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}
