/**
 * A `runfleet apply` SIGKILLed after its provider created the instances but before it recorded
 * them leaves an open `increase` intent and a ledger without them. The next `plan` or `apply`
 * resolves that as `watch` does: the instances are adopted, the intent closed, nothing created twice.
 */
import { join } from 'node:path';
import t from 'tap';
import { openSqliteStore } from '../../src/store/index.js';
import { runCrashChild, sandboxIds } from '../helpers/crash-run.js';
import { runCli } from './helpers.js';

const FLEET = 'name: ci\nprovider: { type: local }\nmax_instances: 3\npolicy:\n  - idle_count: 3\n';

async function stored(dir: string) {
  const store = await openSqliteStore(join(dir, '.runfleet', 'state.db'));
  try {
    return {
      intents: (await store.listOpenIntents()).map((i) => i.action),
      ledger: (await store.listInstances('ci')).map((r) => r.id).sort(),
      lock: await store.currentLock(),
    };
  } finally {
    await store.close();
  }
}

for (const next of ['plan', 'apply'] as const) {
  t.test(`apply killed after increase: the next ${next} adopts and closes the intent`, async (t) => {
    const dir = t.testdir({ fleets: { 'ci.yaml': FLEET } });
    const run = await runCrashChild('apply', dir, 'increase:returned');
    t.equal(run.signal, 'SIGKILL', run.stderr);
    const created = sandboxIds(dir, 'ci');
    t.equal(created.length, 3, 'the provider made the instances');
    t.match(await stored(dir), { intents: ['increase'], ledger: [] }, 'the crash left an open intent');

    const res = await runCli(dir, next === 'plan' ? ['plan'] : ['apply', '--auto-approve']);
    t.equal(res.code, 0, res.stderr);
    t.match(res.stderr, /interrupted run: closed 1 open intent\(s\), adopted 3 instance\(s\)/);
    t.match(res.stdout, /No changes/, 'nothing is created twice');
    const after = await stored(dir);
    t.strictSame(after.intents, [], 'no intent stays open');
    t.strictSame(after.ledger, created, 'the ledger holds exactly the instances that exist');
    t.equal(after.lock, undefined, 'the lock of the dead apply is gone');
    t.strictSame(sandboxIds(dir, 'ci'), created, 'never above max_instances, nothing removed');
  });
}
