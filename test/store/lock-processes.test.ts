/**
 * The lock and the busy timeout across real processes: a child node process writes the same SQLite
 * file through better-sqlite3 directly, the way a second runfleet would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { openSqliteStore } from '../../src/store/index.js';

const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

/**
 * argv: file, mode, holdMs. Modes:
 * - `lock`: commit a lock row, say `ready`, exit.
 * - `hold-then-lock`: take the write lock, say `ready`, insert a lock row after holdMs, commit.
 * - `hold-then-rollback`: take the write lock, say `ready`, roll back after holdMs.
 */
const childScript = `
import Database from 'better-sqlite3';
const [file, mode, holdMs] = process.argv.slice(1);
const db = new Database(file, { timeout: 5000 });
const insertLock = () => db
  .prepare('INSERT INTO locks (slot, id, operation, who, created_at) VALUES (1, ?, ?, ?, ?)')
  .run('child-lock-' + process.pid, 'apply', 'child pid ' + process.pid, new Date().toISOString());
if (mode === 'lock') {
  insertLock();
  process.stdout.write('ready\\n');
  db.close();
} else {
  db.exec('BEGIN IMMEDIATE');
  process.stdout.write('ready\\n');
  setTimeout(() => {
    if (mode === 'hold-then-lock') { insertLock(); db.exec('COMMIT'); } else { db.exec('ROLLBACK'); }
    db.close();
  }, Number(holdMs));
}
`;

interface Child {
  proc: ChildProcess;
  exited: Promise<number | null>;
}

/** Starts the child and resolves once it said `ready` (its write lock or lock row is in place). */
async function startChild(file: string, mode: string, holdMs = 0): Promise<Child> {
  const proc = spawn(
    process.execPath,
    ['--input-type=module', '-e', childScript, file, mode, String(holdMs)],
    {
      cwd: projectRoot, // so the bare `better-sqlite3` import resolves to the project's copy
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    proc.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
    void exited.then((code) => reject(new Error(`child exited ${code} before ready: ${stderr}`)));
  });
  return { proc, exited };
}

t.test('a lock taken by another process is reported with its holder', async (t) => {
  const file = join(t.testdir(), 'state.db');
  const store = await openSqliteStore(file);
  t.teardown(() => store.close());

  const child = await startChild(file, 'lock');
  t.equal(await child.exited, 0);
  const pid = child.proc.pid;

  await t.rejects(store.acquireLock('apply', 'parent'), {
    code: 'LOCKED',
    message: `state is locked by child pid ${pid} (apply) since`,
    hint: `runfleet force-unlock child-lock-${pid}`,
  });
  // The child is gone: the operator force-unlocks its lock by id, then the lock is free.
  t.equal(await store.forceUnlock(`child-lock-${pid}`), true);
  const mine = await store.acquireLock('apply', 'parent');
  t.equal(mine.who, 'parent');
});

t.test("acquireLock waits for another process's write transaction, then sees its lock", async (t) => {
  const file = join(t.testdir(), 'state.db');
  const store = await openSqliteStore(file);
  t.teardown(() => store.close());

  const child = await startChild(file, 'hold-then-lock', 400);
  const started = Date.now();
  // No lock row exists yet; a non-atomic check-then-insert would succeed here and double-book.
  await t.rejects(store.acquireLock('apply', 'parent'), { code: 'LOCKED', message: /child pid/ });
  t.ok(Date.now() - started >= 250, 'the store waited on the busy timeout instead of failing');
  t.equal(await child.exited, 0);
});

t.test('a write transaction held past the busy timeout gives a retryable STATE error', async (t) => {
  const file = join(t.testdir(), 'state.db');
  await (await openSqliteStore(file)).close(); // create the schema before the child locks the file
  const store = await openSqliteStore(file, { busyTimeoutMs: 50 });
  t.teardown(() => store.close());

  const child = await startChild(file, 'hold-then-rollback', 800);
  await t.rejects(store.acquireLock('apply', 'parent'), {
    code: 'STATE',
    retryable: true,
    hint: /busy/,
  });
  t.equal(await child.exited, 0);
  // Once the other process is done, the same store works again.
  const lock = await store.acquireLock('apply', 'parent');
  t.equal(lock.who, 'parent');
});
