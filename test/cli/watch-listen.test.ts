/**
 * `runfleet watch --listen` on a port something else holds: the daemon must fail with a clear
 * message before it touches anything (no lock taken, no instance created), not crash half-started.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { openSqliteStore } from '../../src/store/index.js';
import { runCli } from './helpers.js';

const FLEET = 'name: busy\nprovider: { type: local }\nmax_instances: 2\npolicy:\n  - idle_count: 2\n';

t.test('a busy --listen port fails at once and leaves nothing behind', async (t) => {
  const dir = t.testdir({ fleets: { 'busy.yaml': FLEET } });
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => holder.close(() => r())));
  const listen = `127.0.0.1:${(holder.address() as AddressInfo).port}`;

  const run = await runCli(dir, ['watch', '--listen', listen, '--interval', '1s']);
  t.equal(run.code, 1);
  t.match(run.stderr, `Error: cannot listen on ${listen}: the address is already in use`);
  t.match(run.stderr, /hint: .*--listen/);
  t.notMatch(run.stderr, /Internal error|EADDRINUSE|\n\s+at /, 'no internal error, no stack trace');

  const sandboxes = join(dir, '.runfleet', 'local', 'busy');
  t.strictSame(existsSync(sandboxes) ? readdirSync(sandboxes) : [], [], 'no instance was created');
  const store = await openSqliteStore(join(dir, '.runfleet', 'state.db'));
  t.teardown(() => store.close());
  t.equal(await store.currentLock(), undefined, 'the lock is not left held');
  t.strictSame(await store.listInstances(), [], 'nothing in the ledger');
  t.strictSame(await store.listOpenIntents(), [], 'no intent opened');
});

t.test('a malformed --listen address is a usage error, before anything starts', async (t) => {
  const dir = t.testdir({ fleets: { 'busy.yaml': FLEET } });
  const run = await runCli(dir, ['watch', '--listen', '127.0.0.1:99999']);
  t.equal(run.code, 1);
  t.match(run.stderr, /invalid --listen address 127\.0\.0\.1:99999/);
  t.notMatch(run.stderr, /Internal error|\n\s+at /);
  t.notOk(existsSync(join(dir, '.runfleet', 'local', 'busy')), 'no instance was created');
});
