import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import t from 'tap';
import { isFleetError } from '../../src/errors.js';
import { LATEST_SCHEMA_VERSION, migrate, migrations, readSchemaVersion } from '../../src/store/migrations.js';
import { openSqliteStore } from '../../src/store/index.js';

const tableNames = (db: Database.Database): string[] =>
  (
    db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
      name: string;
    }[]
  ).map((r) => r.name);

t.test('migrations are numbered 1..N without gaps', async (t) => {
  t.same(
    migrations.map((m) => m.version),
    migrations.map((_m, i) => i + 1),
  );
  t.equal(LATEST_SCHEMA_VERSION, migrations.length);
});

t.test('an empty file migrates to the latest version with every table', async (t) => {
  const file = join(t.testdir(), 'nested', 'dir', 'state.db');
  const store = await openSqliteStore(file);
  await store.close();

  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  t.equal(readSchemaVersion(db), LATEST_SCHEMA_VERSION);
  t.same(tableNames(db), [
    'applies',
    'fleets',
    'instances',
    'intents',
    'leases',
    'locks',
    'managers',
    'meta',
    'sqlite_sequence',
  ]);
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal', 'the file is in WAL mode');
});

t.test('a version 1 store loses its unused jobs table and keeps everything else', async (t) => {
  const db = new Database(':memory:');
  t.teardown(() => db.close());
  migrate(db, 'x', migrations.slice(0, 1));
  db.prepare("INSERT INTO fleets (name, spec, hash, applied_at) VALUES ('f', '{}', 'h', 't')").run();
  t.equal(migrate(db, 'x'), LATEST_SCHEMA_VERSION);
  t.notOk(tableNames(db).includes('jobs'));
  t.same(db.prepare('SELECT name FROM fleets').all(), [{ name: 'f' }]);
});

t.test('migrating twice is a no-op', async (t) => {
  const db = new Database(join(t.testdir(), 'state.db'));
  t.teardown(() => db.close());
  t.equal(migrate(db, 'x'), LATEST_SCHEMA_VERSION);
  t.equal(migrate(db, 'x'), LATEST_SCHEMA_VERSION);
  t.equal(readSchemaVersion(db), LATEST_SCHEMA_VERSION);
});

t.test('a later migration applies on top of existing data', async (t) => {
  const db = new Database(join(t.testdir(), 'state.db'));
  t.teardown(() => db.close());
  migrate(db, 'x');
  db.prepare("INSERT INTO fleets VALUES ('ci', '{}', 'h', '2026-01-01T00:00:00.000Z')").run();

  const next = LATEST_SCHEMA_VERSION + 1;
  const extended = [
    ...migrations,
    { version: next, name: 'add note', up: 'ALTER TABLE fleets ADD note TEXT' },
  ];
  t.equal(migrate(db, 'x', extended), next);
  t.same(db.prepare('SELECT name, note FROM fleets').all(), [{ name: 'ci', note: null }]);
});

t.test('a failing migration rolls back completely and keeps the old version', async (t) => {
  const db = new Database(join(t.testdir(), 'state.db'));
  t.teardown(() => db.close());
  migrate(db, 'x');
  const broken = [
    ...migrations,
    {
      version: LATEST_SCHEMA_VERSION + 1,
      name: 'broken',
      up: 'CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);',
    },
  ];
  t.throws(() => migrate(db, 'x', broken), /no_such_table/);
  t.equal(readSchemaVersion(db), LATEST_SCHEMA_VERSION);
  t.notOk(tableNames(db).includes('half_done'), 'the first statement was rolled back too');
});

t.test('a database newer than this build is refused with a hint', async (t) => {
  const file = join(t.testdir(), 'state.db');
  await (await openSqliteStore(file)).close();
  const raw = new Database(file);
  raw
    .prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'")
    .run(String(LATEST_SCHEMA_VERSION + 5));
  raw.close();

  const err = await openSqliteStore(file).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(isFleetError(err), 'a FleetError');
  if (!isFleetError(err)) return;
  t.equal(err.code, 'STATE');
  t.match(err.message, file);
  t.match(err.message, `schema version ${LATEST_SCHEMA_VERSION + 5}`);
  t.match(err.hint, /upgrade runfleet/);

  // Refusing must not have written anything: the version is still the newer one.
  const check = new Database(file, { readonly: true });
  t.equal(readSchemaVersion(check), LATEST_SCHEMA_VERSION + 5);
  check.close();
});

t.test('a file that is not a database is a STATE error naming it', async (t) => {
  const file = join(t.testdir(), 'state.db');
  writeFileSync(file, 'this is not sqlite, just some text that is long enough to be a header'.repeat(10));
  await t.rejects(openSqliteStore(file), {
    name: 'FleetError',
    code: 'STATE',
    message: new RegExp(`cannot open state store ${file}`),
    hint: /damaged/,
  });
});

t.test('a directory in place of the file is a STATE error naming it', async (t) => {
  const dir = t.testdir({ 'state.db': {} });
  const file = join(dir, 'state.db');
  await t.rejects(openSqliteStore(file), { code: 'STATE', message: new RegExp(file), hint: /directory/ });
});
