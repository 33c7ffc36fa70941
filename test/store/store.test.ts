/** The state store's contract, run against SQLite and against PostgreSQL alike. */
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Fleet } from '../../src/model/fleet.js';
import type { LedgerInstance } from '../../src/model/observed.js';
import { describeLockHolder, openSqliteStore, type ApplyRecord } from '../../src/store/index.js';
import { openPostgresStore } from '../../src/store/postgres-store.js';
import { manualTime } from '../../src/util/time.js';
import { storeBackends, type StoreBackend } from '../helpers/store-backends.js';

const T0 = '2026-03-01T10:00:00.000Z';

const { backends, cluster } = await storeBackends(t);

const fleetSpec = { name: 'ci', provider: { type: 'local' }, max_instances: 3 } as unknown as Fleet;

const fullInstance: LedgerInstance = {
  fleet: 'ci',
  id: 'local-0000000a',
  provider: 'local',
  state: 'draining',
  created_at: '2026-03-01T09:00:00.000Z',
  ready_at: '2026-03-01T09:01:00.000Z',
  use_count: 7,
  last_used_at: '2026-03-01T09:30:00.000Z',
  health_failures: 2,
  drain_reason: 'max_use_count',
  acquired: 1,
};

const bareInstance: LedgerInstance = {
  fleet: 'ci',
  id: 'local-0000000b',
  provider: 'local',
  state: 'creating',
  created_at: '2026-03-01T09:05:00.000Z',
  use_count: 0,
  health_failures: 0,
  acquired: 0,
};

t.test('sqlite: location is the path it was opened with', async (t) => {
  const file = join(t.testdir(), 'state.db');
  const store = await openSqliteStore(file);
  t.teardown(() => store.close());
  t.equal(store.location, file);
});

t.test('postgres: location is the URL without password', { skip: !cluster }, async (t) => {
  if (!cluster) return;
  const db = await cluster.createDatabase();
  const store = await openPostgresStore(cluster.pool(db), cluster.url(db));
  t.teardown(() => store.close());
  t.equal(store.location, cluster.url(db));
});

function contract(t: Test, backend: StoreBackend): void {
  t.test('fleets: put, replace, list, delete', async (t) => {
    const { store } = await backend.fresh(t);
    t.same(await store.listFleets(), []);
    await store.putFleet({ name: 'zeta', spec: fleetSpec, hash: 'h1', applied_at: T0 });
    await store.putFleet({ name: 'ci', spec: fleetSpec, hash: 'h1', applied_at: T0 });
    await store.putFleet({
      name: 'ci',
      spec: { ...fleetSpec, max_instances: 9 },
      hash: 'h2',
      applied_at: T0,
    });
    const fleets = await store.listFleets();
    t.same(
      fleets.map((f) => [f.name, f.hash, f.spec.max_instances]),
      [
        ['ci', 'h2', 9],
        ['zeta', 'h1', 3],
      ],
      'sorted by name, the second put replaced the first',
    );
    await store.deleteFleet('ci');
    await store.deleteFleet('not-there');
    t.same(
      (await store.listFleets()).map((f) => f.name),
      ['zeta'],
    );
  });

  t.test('ledger instances round-trip exactly, optional fields stay absent', async (t) => {
    const { store } = await backend.fresh(t);
    await store.putInstance(fullInstance);
    await store.putInstance(bareInstance);
    await store.putInstance({ ...bareInstance, fleet: 'other' });

    t.strictSame(await store.getInstance('ci', fullInstance.id), fullInstance);
    t.strictSame(await store.getInstance('ci', bareInstance.id), bareInstance);
    t.equal(await store.getInstance('ci', 'local-ffffffff'), undefined, 'not found is undefined');
    t.same(
      (await store.listInstances('ci')).map((i) => i.id),
      [fullInstance.id, bareInstance.id],
      'one fleet, by created_at',
    );
    t.equal((await store.listInstances()).length, 3, 'all fleets');

    await store.putInstance({ ...fullInstance, state: 'ready', drain_reason: undefined, use_count: 8 });
    const replaced = await store.getInstance('ci', fullInstance.id);
    t.equal(replaced?.use_count, 8);
    t.notOk(replaced && 'drain_reason' in replaced, 'cleared optional field is gone');

    await store.deleteInstance('ci', fullInstance.id);
    await store.deleteInstance('ci', 'local-ffffffff');
    t.same(
      (await store.listInstances()).map((i) => `${i.fleet}/${i.id}`),
      ['ci/local-0000000b', 'other/local-0000000b'],
    );
  });

  t.test('intents: open, close, list only the open ones', async (t) => {
    const clock = manualTime(T0);
    const { store } = await backend.fresh(t, clock);
    const a = await store.openIntent('ci', 'increase', { n: 2 });
    clock.advance(1000);
    const b = await store.openIntent('ci', 'decrease', { ids: ['local-0000000a'] });
    t.ok(b > a, 'ids grow');

    let open = await store.listOpenIntents();
    t.strictSame(open, [
      { id: a, fleet: 'ci', action: 'increase', detail: { n: 2 }, created_at: T0 },
      {
        id: b,
        fleet: 'ci',
        action: 'decrease',
        detail: { ids: ['local-0000000a'] },
        created_at: '2026-03-01T10:00:01.000Z',
      },
    ]);

    await store.closeIntent(a, 'done');
    open = await store.listOpenIntents();
    t.same(
      open.map((i) => i.id),
      [b],
    );
    await store.closeIntent(a, 'closing twice keeps the first outcome');
    await store.closeIntent(9999, 'unknown id is a no-op');
    t.same(
      (await store.listOpenIntents()).map((i) => i.id),
      [b],
    );
  });

  t.test('applies: newest first, limit, JSON fields round-trip', async (t) => {
    const { store } = await backend.fresh(t);
    const record = (n: number): ApplyRecord => ({
      started_at: `2026-03-01T10:0${n}:00.000Z`,
      finished_at: `2026-03-01T10:0${n}:30.000Z`,
      plan_hash: `hash${n}`,
      result: n === 2 ? 'partial' : 'success',
      summary: { add: n, change: 0, destroy: 1 },
      steps: [`step ${n}a`, `step ${n}b`],
    });
    const ids = [];
    for (const n of [1, 2, 3]) ids.push(await store.recordApply(record(n)));

    const all = await store.listApplies();
    t.same(
      all.map((a) => a.plan_hash),
      ['hash3', 'hash2', 'hash1'],
    );
    t.strictSame(all[1], { id: ids[1], ...record(2) });
    t.same(
      (await store.listApplies(2)).map((a) => a.plan_hash),
      ['hash3', 'hash2'],
    );
    t.same(await store.listApplies(0), []);
    await t.rejects(store.listApplies(-1), { code: 'USAGE' });
  });

  t.test('reopening keeps every kind of data', async (t) => {
    const { store, again: reopen } = await backend.fresh(t);
    await store.putFleet({ name: 'ci', spec: fleetSpec, hash: 'h1', applied_at: T0 });
    await store.putInstance(fullInstance);
    await store.openIntent('ci', 'increase', { n: 1 });
    await store.recordApply({
      started_at: T0,
      finished_at: T0,
      plan_hash: 'p',
      result: 'noop',
      summary: { add: 0, change: 0, destroy: 0 },
      steps: [],
    });
    const lock = await store.acquireLock('apply', 'me@host pid 1');
    await store.close();

    const again = await reopen();
    t.strictSame(await again.listFleets(), [{ name: 'ci', spec: fleetSpec, hash: 'h1', applied_at: T0 }]);
    t.strictSame(await again.listInstances(), [fullInstance]);
    t.equal((await again.listOpenIntents()).length, 1);
    t.equal((await again.listApplies()).length, 1);
    t.strictSame(
      await again.currentLock(),
      lock,
      'a lock survives its process: force-unlock exists for that',
    );
  });

  t.test('lock: acquire, contention, wrong-id release, release, force-unlock', async (t) => {
    const { store } = await backend.fresh(t);
    t.equal(await store.currentLock(), undefined);

    const lock = await store.acquireLock('apply', 'alice@box pid 42');
    t.match(lock, {
      id: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      operation: 'apply',
      who: 'alice@box pid 42',
      created_at: T0,
    });
    t.strictSame(await store.currentLock(), lock);

    await t.rejects(store.acquireLock('watch', 'bob@box pid 7'), {
      name: 'FleetError',
      code: 'LOCKED',
      message: `state is locked by alice@box pid 42 (apply) since ${T0}, lock id ${lock.id}`,
      hint: `wait for it to finish, or if that process is gone: runfleet force-unlock ${lock.id}`,
      // Retrying at once cannot help while the holder runs: the CLI must not say it may.
      retryable: false,
    });

    await store.releaseLock('00000000-0000-4000-8000-000000000000');
    t.strictSame(await store.currentLock(), lock, 'release by a wrong id is a no-op');

    await store.releaseLock(lock.id);
    t.equal(await store.currentLock(), undefined);
    await store.releaseLock(lock.id);

    const second = await store.acquireLock('apply', 'bob@box pid 7');
    t.not(second.id, lock.id, 'every lock gets a fresh id');
    t.equal(await store.forceUnlock(lock.id), false, 'force-unlock of a stale id finds nothing');
    t.strictSame(await store.currentLock(), second);
    t.equal(await store.forceUnlock(second.id), true);
    t.equal(await store.currentLock(), undefined);
    t.equal(await store.forceUnlock(second.id), false);
  });

  t.test('lock contention between two stores on the same data', async (t) => {
    const { store: first, again } = await backend.fresh(t);
    const second = await again(manualTime('2026-03-01T11:00:00.000Z'));

    const held = await first.acquireLock('apply', 'first pid 1');
    await t.rejects(second.acquireLock('apply', 'second pid 2'), {
      code: 'LOCKED',
      message: /locked by first pid 1 \(apply\)/,
    });
    t.strictSame(await second.currentLock(), held, 'both see the same lock');

    // The second process force-unlocks a holder it believes dead, then takes the lock itself.
    t.equal(await second.forceUnlock(held.id), true);
    const taken = await second.acquireLock('watch', 'second pid 2');
    await t.rejects(first.acquireLock('apply', 'first pid 1'), { code: 'LOCKED', message: /second pid 2/ });
    await first.releaseLock(held.id);
    t.strictSame(await first.currentLock(), taken, "the first's stale release does not free the new lock");
  });

  t.test('a closed store fails with a STATE error, and closing twice is fine', async (t) => {
    const { store } = await backend.fresh(t);
    await store.close();
    await store.close();
    await t.rejects(store.listFleets(), { code: 'STATE', message: /read fleets/ });
  });
}

for (const backend of backends) t.test(backend.name, async (t) => contract(t, backend));

t.test('in-memory store for other modules tests', async (t) => {
  const store = await openSqliteStore(':memory:');
  t.teardown(() => store.close());
  await store.putInstance(bareInstance);
  t.equal((await store.listInstances()).length, 1);
});

t.test('describeLockHolder names user, host and pid', async (t) => {
  t.match(describeLockHolder(1234), /^.+@.+ pid 1234$/);
  t.match(describeLockHolder(), new RegExp(` pid ${process.pid}$`));
});
