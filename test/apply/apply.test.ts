import t, { type Test } from 'tap';
import { applyPlan } from '../../src/apply/apply.js';
import { LedgerWriter } from '../../src/store/ledger-writer.js';
import { FleetError } from '../../src/errors.js';
import type { DesiredFleet } from '../../src/model/fleet.js';
import type { GroupRef, ObservedGroup } from '../../src/model/observed.js';
import { planFleets } from '../../src/plan/index.js';
import type { Provider } from '../../src/providers/provider.js';
import { ProviderRegistry } from '../../src/providers/registry.js';
import { openSqliteStore } from '../../src/store/index.js';
import { manualTime } from '../../src/util/time.js';
import { fleetSpec } from '../helpers/fake-state.js';

/** An in-memory provider with scripted failures. */
function memoryProvider(opts: { failIncreaseFor?: string; deleteRefusals?: number } = {}) {
  const groups = new Map<string, string[]>();
  let next = 1;
  let refusals = opts.deleteRefusals ?? 0;
  const calls: string[] = [];
  const provider: Provider = {
    type: 'local',
    observe: async (refs: GroupRef[]) =>
      refs.map((ref): ObservedGroup => ({
        ref,
        exists: groups.has(ref.name),
        settings: {},
        instances: (groups.get(ref.name) ?? []).map((id) => ({
          id,
          state: 'running',
          launched_at: '2026-01-01T00:00:00Z',
        })),
        diagnostics: [],
      })),
    applyGroup: async (fleet) => {
      calls.push(`apply ${fleet.name}`);
      if (!groups.has(fleet.name)) groups.set(fleet.name, []);
    },
    deleteGroup: async (ref) => {
      calls.push(`delete ${ref.name}`);
      if (refusals-- > 0)
        throw new FleetError('PROVIDER', `group ${ref.name} still has instances`, { retryable: true });
      groups.delete(ref.name);
    },
    increase: async (ref, n) => {
      calls.push(`increase ${ref.name} ${n}`);
      if (ref.name === opts.failIncreaseFor) throw new FleetError('PROVIDER', 'quota exceeded');
      for (let i = 0; i < n; i++) groups.get(ref.name)!.push(`m-${next++}`);
      return n;
    },
    decrease: async (ref, ids) => {
      calls.push(`decrease ${ref.name} ${ids.join(',')}`);
      groups.set(
        ref.name,
        (groups.get(ref.name) ?? []).filter((id) => !ids.includes(id)),
      );
      return ids;
    },
    connectInfo: async () => {
      throw new Error('unused');
    },
    heartbeat: async () => true,
  };
  return { provider, calls, groups };
}

const desired = (name: string, idle: number): DesiredFleet => ({
  spec: fleetSpec({ name, executor: 'instance', docker: null, policy: [{ idle_count: idle }] }),
  source: { file: `fleets/${name}.yaml`, line: 1 },
});

async function setup(t: Test, opts: Parameters<typeof memoryProvider>[0] = {}) {
  const store = await openSqliteStore(':memory:');
  t.teardown(() => store.close());
  const mem = memoryProvider(opts);
  const clock = manualTime('2026-01-01T00:00:00Z');
  const deps = {
    store,
    ledger: new LedgerWriter(store),
    providers: new ProviderRegistry(() => mem.provider),
    time: clock,
  };
  const planNow = async (fleets: DesiredFleet[]) => {
    const refs = fleets.map((d) => ({ fleet: d.spec.name, provider: 'local' as const, name: d.spec.name }));
    const applied = await store.listFleets();
    const all = [
      ...refs,
      ...applied
        .filter((a) => !refs.some((r) => r.fleet === a.name))
        .map((a) => ({ fleet: a.name, provider: 'local' as const, name: a.name })),
    ];
    const observed = {
      fleets: applied,
      groups: await mem.provider.observe(all),
      ledger: await store.listInstances(),
      demand: {},
    };
    return planFleets({ desired: fleets, observed, now: clock.now(), basis: { observed: 'o', fleets: 'f' } });
  };
  return { store, mem, deps, clock, planNow };
}

t.test('create records the fleet, the new instances and closed intents', async (t) => {
  const { store, mem, deps, planNow } = await setup(t);
  const fleets = [desired('a', 2)];
  const outcome = await applyPlan(await planNow(fleets), fleets, deps);
  t.equal(outcome.result, 'success');
  t.same(mem.calls, ['apply a', 'increase a 2']);
  t.same(
    (await store.listFleets()).map((f) => f.name),
    ['a'],
  );
  t.same(
    (await store.listInstances('a')).map((i) => [i.id, i.state]),
    [
      ['m-1', 'creating'],
      ['m-2', 'creating'],
    ],
    'creating until a readiness check connects to them (the daemon does that)',
  );
  t.same(await store.listOpenIntents(), [], 'every intent closed');
  const again = await applyPlan(await planNow(fleets), fleets, deps);
  t.equal(again.result, 'noop', 'converged: nothing left to do');
});

t.test('a failed step skips the rest of its fleet; other fleets go on; re-apply converges', async (t) => {
  const { store, mem, deps, planNow } = await setup(t, { failIncreaseFor: 'bad' });
  const fleets = [desired('bad', 1), desired('good', 1)];
  const outcome = await applyPlan(await planNow(fleets), fleets, deps);
  t.equal(outcome.result, 'partial');
  t.same(
    outcome.steps.map((s) => `${s.fleet} ${s.step} ${s.status}`),
    ['bad configure done', 'bad increase failed', 'good configure done', 'good increase done'],
  );
  t.match(outcome.steps[1]?.error, { code: 'PROVIDER', message: /quota exceeded/ });
  t.same((await store.listOpenIntents()).length, 0, 'the failed intent is closed with its outcome');
  t.equal((await store.listInstances('good')).length, 1);
  mem.calls.length = 0;
});

t.test('a plan with errors is refused before anything is touched', async (t) => {
  const { mem, deps, planNow } = await setup(t);
  const fleets = [desired('a', 1)];
  const plan = { ...(await planNow(fleets)), errored: true };
  await t.rejects(applyPlan(plan, fleets, deps), { code: 'APPLY_ABORTED' });
  t.same(mem.calls, []);
});

t.test('deleting a group waits out retryable refusals only when asked to', async (t) => {
  const { store, mem, deps, clock, planNow } = await setup(t, { deleteRefusals: 2 });
  await applyPlan(await planNow([desired('gone', 1)]), [desired('gone', 1)], deps);

  const noWait = await applyPlan(await planNow([]), [], deps);
  t.equal(
    noWait.result,
    'partial',
    'without deletionWait the refusal fails the step (the daemon retries later)',
  );
  t.same(
    (await store.listFleets()).map((f) => f.name),
    ['gone'],
    'the fleet stays recorded until its group is gone',
  );

  const waits: string[] = [];
  const waited = await applyPlan(await planNow([]), [], {
    ...deps,
    // Each poll's pause passes at once on the test clock.
    time: { ...clock, sleep: async (ms: number) => clock.advance(ms) },
    deletionWait: {
      timeoutMs: 60_000,
      pollMs: 5000,
      onWait: (m) => waits.push(m),
    },
  });
  t.equal(waited.result, 'success');
  t.equal(waits.length, 1, 'one more refusal, waited out');
  t.same(await store.listFleets(), []);
  t.notOk(mem.groups.has('gone'));
});
