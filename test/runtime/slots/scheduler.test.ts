import t from 'tap';
import { LedgerWriter } from '../../../src/store/ledger-writer.js';
import { SlotScheduler } from '../../../src/runtime/slots/scheduler.js';
import type { Acquisition, SlotEvent } from '../../../src/runtime/slots/types.js';
import { openSqliteStore } from '../../../src/store/index.js';
import { ManualTimers } from '../../daemon/sim/manual-timers.js';

async function setup(settings: { cap?: number; maxUse?: number; timeoutMs?: number } = {}) {
  const timers = new ManualTimers('2026-03-02T10:00:00Z');
  const store = await openSqliteStore(':memory:', { clock: timers.clock });
  const slots = new SlotScheduler({ ledger: new LedgerWriter(store), time: timers.scope() });
  slots.configureFleet('f', {
    capacityPerInstance: settings.cap ?? 2,
    maxUseCount: settings.maxUse ?? 0,
    maxInstances: 10,
    acquireTimeoutMs: settings.timeoutMs ?? 60_000,
  });
  const events: SlotEvent[] = [];
  slots.subscribe((e) => events.push(e));
  const addInstance = async (id: string) => {
    await store.putInstance({
      fleet: 'f',
      id,
      provider: 'local',
      state: 'ready',
      created_at: '2026-03-02T09:00:00Z',
      use_count: 0,
      health_failures: 0,
      acquired: 0,
    });
    slots.addReadyInstance('f', id, 0);
  };
  return { timers, store, slots, events, addInstance };
}

t.test('reserve only with an idle slot; reservations never exceed idle slots', async (t) => {
  const { slots, addInstance } = await setup({ cap: 2 });
  t.equal(slots.reserve('f'), undefined, 'no instance: no reservation');
  t.equal(slots.operations('f').get('reserve_available_capacity_failure'), 1);
  await addInstance('i1');
  const r1 = slots.reserve('f');
  const r2 = slots.reserve('f');
  t.ok(r1?.valid && r2?.valid);
  t.equal(slots.reserve('f'), undefined, 'two slots, two reservations');
  t.same(slots.demand('f'), { acquired: 0, reserved: 2, pending: 0 });
  t.same(slots.claimForRemoval('f', ['i1'], 'idle_time'), ['i1'], 'reservations do not pin an idle instance');
  t.notOk(r1?.valid, 'surplus reservations revoked');
  t.equal(slots.demand('f').reserved, 0);
});

t.test(
  'acquire waits as pending, is served when an instance becomes ready, releases count uses',
  async (t) => {
    const { slots, store, events, addInstance } = await setup({ cap: 1, maxUse: 2 });
    const job = slots.acquire('f');
    t.equal(slots.demand('f').pending, 1);
    t.ok(
      events.some((e) => e.kind === 'pending'),
      'pending is an event',
    );
    await addInstance('i1');
    const a = await job;
    t.match(a, { instanceId: 'i1', slot: 0 });
    t.same(slots.demand('f'), { acquired: 1, reserved: 0, pending: 0 });
    t.same(slots.claimForRemoval('f', ['i1'], 'scale_in'), [], 'a busy instance cannot be claimed');
    await slots.release(a);
    t.equal((await store.getInstance('f', 'i1'))?.use_count, 1);
    const b = await slots.acquire('f');
    await slots.release(b);
    const row = await store.getInstance('f', 'i1');
    t.match(row, { use_count: 2, state: 'draining', drain_reason: 'max_use_count', acquired: 0 });
    t.equal(slots.counts('f').unavailable, 1, 'used-up slots are unavailable');
    t.equal(slots.reserve('f'), undefined);
  },
);

t.test('acquire times out; shutdown refuses waiting jobs', async (t) => {
  const { slots, timers } = await setup({ timeoutMs: 1000 });
  const job = t.rejects(slots.acquire('f'), { code: 'PROVIDER', retryable: true });
  const settle = () => new Promise<void>((r) => setImmediate(r));
  await timers.advance(1001, settle);
  await job;
  const waiting = t.rejects(slots.acquire('f'), { code: 'APPLY_ABORTED' });
  slots.stopAccepting();
  await waiting;
  await t.rejects(slots.acquire('f'), { code: 'APPLY_ABORTED' });
});

t.test('a vanished instance marks its jobs lost and they are never moved', async (t) => {
  const { slots, addInstance } = await setup({ cap: 1 });
  await addInstance('i1');
  const a = await slots.acquire('f');
  slots.removeInstance('f', 'i1');
  t.equal(a.lost, true);
  await slots.release(a);
  t.same(slots.demand('f'), { acquired: 0, reserved: 0, pending: 0 });
  t.equal(slots.activeAcquisitions(), 0);
});

t.test('jobs pack onto the busiest instance so others can scale in', async (t) => {
  const { slots, addInstance } = await setup({ cap: 2 });
  await addInstance('i1');
  await addInstance('i2');
  const a = await slots.acquire('f');
  const b = await slots.acquire('f');
  t.equal(a.instanceId, b.instanceId);
  t.equal(slots.counts('f').idle, 2);
});

t.test('a job ends alike when its ledger write fails (the database gone): the slot is freed', async (t) => {
  const { slots, store, addInstance, events } = await setup({ cap: 1 });
  await addInstance('i1');
  const a = await slots.acquire('f');
  // The state store stops answering (PostgreSQL stopped) while the job runs.
  Object.assign(store, {
    getInstance: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432')),
  });
  await t.resolves(slots.release(a), 'release does not throw');
  t.same(slots.demand('f'), { acquired: 0, reserved: 0, pending: 0 }, 'the slot is free');
  t.ok(
    events.some((e) => e.kind === 'release'),
    'the release is announced',
  );
  const next = await slots.acquire('f');
  t.equal(next.instanceId, 'i1', 'the next job gets the instance');
});

t.test('the per-instance count of held slots always equals the slots that are held', async (t) => {
  // `held` is kept beside `slots` so counting is not a scan of every slot per job request; a path
  // that fills or clears a slot without it would skew demand and capacity. A seeded sequence of
  // acquires, releases, capacity changes and instances leaving checks the two after every step.
  const { slots, addInstance } = await setup({ cap: 3 });
  for (const id of ['i1', 'i2', 'i3']) await addInstance(id);
  let seed = 7;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const holding: Acquisition[] = [];
  let served = 0;
  let released = 0;
  const waiting = new Set<Promise<void>>();
  const check = (step: number, what: string) => {
    const views = slots.instances('f');
    for (const v of views) {
      if (v.acquired !== v.slots.length) {
        t.fail(`step ${step} (${what}): ${v.id} counts ${v.acquired} held, holds ${v.slots.length}`);
        return false;
      }
    }
    const total = views.reduce((n, v) => n + v.acquired, 0);
    if (total !== slots.demand('f').acquired) {
      t.fail(`step ${step} (${what}): demand says ${slots.demand('f').acquired}, instances ${total}`);
      return false;
    }
    return true;
  };
  for (let step = 0; step < 400; step++) {
    const op = random(5);
    let what: string;
    if (op <= 1) {
      what = 'acquire';
      const p = slots.acquire('f').then(
        (a) => void (served++, holding.push(a)),
        () => undefined,
      );
      waiting.add(p);
      void p.finally(() => waiting.delete(p));
    } else if (op === 2 && holding.length > 0) {
      what = 'release';
      await slots.release(holding.splice(random(holding.length), 1)[0]!);
      released++;
    } else if (op === 3) {
      const cap = 1 + random(4);
      what = `capacity ${cap}`;
      slots.configureFleet('f', {
        capacityPerInstance: cap,
        maxUseCount: 0,
        maxInstances: 10,
        acquireTimeoutMs: 60_000,
      });
    } else {
      const id = `i${1 + random(3)}`;
      what = `replace ${id}`;
      if (slots.hasInstance('f', id) && !slots.isBusy('f', id)) {
        slots.removeInstance('f', id);
        await addInstance(id);
      }
    }
    await new Promise((r) => setImmediate(r));
    if (!check(step, what)) break;
  }
  for (const a of holding.splice(0)) await slots.release(a);
  check(400, 'all released');
  slots.closeFleet('f');
  await Promise.all(waiting);
  t.ok(
    served > 50 && released > 50,
    `the steps did the work: ${served} served, ${released} released mid-way`,
  );
});
