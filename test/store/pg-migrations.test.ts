/** The schema migrations on a real PostgreSQL: fresh databases, concurrent starts, refusals. */
import t from 'tap';
import { isFleetError } from '../../src/errors.js';
import { LATEST_SCHEMA_VERSION, migrations } from '../../src/store/migrations.js';
import { migratePg, readPgSchemaVersion } from '../../src/store/pg-migrations.js';
import { openPostgresStore } from '../../src/store/postgres-store.js';
import { startPostgres } from '../helpers/topology/postgres.js';

const cluster = await startPostgres(t);

if (cluster) {
  const tables = async (db: string): Promise<string[]> => {
    const pool = cluster.pool(db);
    try {
      const r = await pool.query<{ tablename: string }>(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
      );
      return r.rows.map((x) => x.tablename);
    } finally {
      await pool.end();
    }
  };

  t.test('every released migration has its PostgreSQL text', async (t) => {
    t.same(
      migrations.filter((m) => !m.pg).map((m) => m.version),
      [],
    );
  });

  t.test('an empty database migrates to the latest version with every table', async (t) => {
    const db = await cluster.createDatabase();
    const store = await openPostgresStore(cluster.pool(db), cluster.url(db));
    await store.close();
    t.same(await tables(db), [
      'applies',
      'fleets',
      'instances',
      'intents',
      'leases',
      'locks',
      'managers',
      'meta',
    ]);
    const pool = cluster.pool(db);
    t.teardown(() => pool.end());
    const c = await pool.connect();
    t.equal(await readPgSchemaVersion(c), LATEST_SCHEMA_VERSION);
    c.release();
  });

  t.test('managers starting at once on a fresh database migrate it exactly once', async (t) => {
    const db = await cluster.createDatabase();
    const stores = await Promise.all(
      Array.from({ length: 6 }, () => openPostgresStore(cluster.pool(db), cluster.url(db))),
    );
    for (const s of stores) await s.close();
    const pool = cluster.pool(db);
    t.teardown(() => pool.end());
    const meta = await pool.query<{ key: string; value: string }>('SELECT key, value FROM meta ORDER BY key');
    t.same(meta.rows.find((r) => r.key === 'schema_version')?.value, String(LATEST_SCHEMA_VERSION));
    t.equal(meta.rows.length, 1 + LATEST_SCHEMA_VERSION, 'one row per migration, and the version');
  });

  t.test('a version 1 database loses its unused jobs table and keeps everything else', async (t) => {
    const db = await cluster.createDatabase();
    const pool = cluster.pool(db);
    t.teardown(() => pool.end());
    const c = await pool.connect();
    t.teardown(() => c.release());
    t.equal(await migratePg(c, 'x', migrations.slice(0, 1)), 1);
    await c.query("INSERT INTO fleets (name, spec, hash, applied_at) VALUES ('f', '{}', 'h', 't')");
    t.equal(await migratePg(c, 'x'), LATEST_SCHEMA_VERSION);
    t.equal(await migratePg(c, 'x'), LATEST_SCHEMA_VERSION, 'migrating twice is a no-op');
    t.notOk((await tables(db)).includes('jobs'));
    t.same((await c.query('SELECT name FROM fleets')).rows, [{ name: 'f' }]);
  });

  t.test('a failing migration rolls back completely and keeps the old version', async (t) => {
    const db = await cluster.createDatabase();
    const pool = cluster.pool(db);
    t.teardown(() => pool.end());
    const c = await pool.connect();
    t.teardown(() => c.release());
    await migratePg(c, 'x');
    const broken = [
      ...migrations,
      {
        version: LATEST_SCHEMA_VERSION + 1,
        name: 'broken',
        up: '',
        pg: 'CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);',
      },
    ];
    await t.rejects(migratePg(c, 'x', broken), /no_such_table/);
    t.equal(await readPgSchemaVersion(c), LATEST_SCHEMA_VERSION);
    t.notOk((await tables(db)).includes('half_done'), 'the first statement was rolled back too');
  });

  t.test('a database newer than this build is refused with a hint, and left as it was', async (t) => {
    const db = await cluster.createDatabase();
    await (await openPostgresStore(cluster.pool(db), cluster.url(db))).close();
    const pool = cluster.pool(db);
    t.teardown(() => pool.end());
    await pool.query("UPDATE meta SET value = $1 WHERE key = 'schema_version'", [
      String(LATEST_SCHEMA_VERSION + 5),
    ]);
    const err = await openPostgresStore(cluster.pool(db), cluster.url(db)).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(isFleetError(err), 'a FleetError');
    if (!isFleetError(err)) return;
    t.equal(err.code, 'STATE');
    t.match(err.message, cluster.url(db));
    t.match(err.message, `schema version ${LATEST_SCHEMA_VERSION + 5}`);
    t.match(err.hint, /upgrade runfleet/);
    const row = await pool.query<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'");
    t.equal(row.rows[0]?.value, String(LATEST_SCHEMA_VERSION + 5));
  });
}
