import t from 'tap';
import { basisOf, observeState } from '../../src/apply/observe.js';
import type { GroupRef, ObservedGroup } from '../../src/model/observed.js';
import type { Provider } from '../../src/providers/provider.js';
import { ProviderRegistry } from '../../src/providers/registry.js';
import { openSqliteStore } from '../../src/store/index.js';
import { fleetSpec } from '../helpers/fake-state.js';

/** A provider that records observe calls and reports one extra tagged group from discover. */
function recordingProvider(discovered: GroupRef[]) {
  const calls: GroupRef[][] = [];
  const provider: Provider = {
    type: 'local',
    async observe(refs) {
      calls.push(refs);
      return refs.map((ref): ObservedGroup => ({
        ref,
        exists: true,
        settings: {},
        instances: [],
        diagnostics: [],
      }));
    },
    discover: async () => discovered,
    applyGroup: async () => {},
    deleteGroup: async () => {},
    increase: async (_r, n) => n,
    decrease: async (_r, ids) => ids,
    connectInfo: async () => {
      throw new Error('unused');
    },
    heartbeat: async () => true,
  };
  return { provider, calls };
}

t.test('observes desired and applied fleets in one batched call and reports orphan groups', async (t) => {
  const store = await openSqliteStore(':memory:');
  t.teardown(() => store.close());
  const gone = fleetSpec({ name: 'gone' });
  await store.putFleet({ name: 'gone', spec: gone, hash: 'h', applied_at: '2026-01-01T00:00:00Z' });
  const { provider, calls } = recordingProvider([
    { fleet: 'a', provider: 'local', name: 'a' },
    { fleet: 'stray', provider: 'local', name: 'stray' },
  ]);
  const registry = new ProviderRegistry(() => provider);
  const desired = [{ spec: fleetSpec({ name: 'a' }), source: { file: 'fleets/a.yaml', line: 1 } }];

  const { observed, basis } = await observeState(desired, store, registry);
  t.equal(calls.length, 1, 'one observe call for all fleets of a provider');
  t.same(calls[0]?.map((r) => r.fleet).sort(), ['a', 'gone']);
  t.same(
    observed.diagnostics?.map((d) => d.code),
    ['ORPHAN_GROUP'],
  );
  t.match(observed.diagnostics?.[0]?.message, /stray/);
  t.same(basis, basisOf(observed, desired), 'basis is a function of what was observed');
});

t.test('the basis moves when the ledger or the fleet files change', async (t) => {
  const store = await openSqliteStore(':memory:');
  t.teardown(() => store.close());
  const registry = new ProviderRegistry(() => recordingProvider([]).provider);
  const desired = [{ spec: fleetSpec({ name: 'a' }), source: { file: 'fleets/a.yaml', line: 1 } }];
  const first = await observeState(desired, store, registry);
  await store.putInstance({
    fleet: 'a',
    id: 'local-1',
    provider: 'local',
    state: 'ready',
    created_at: '2026-01-01T00:00:00Z',
    use_count: 0,
    health_failures: 0,
    acquired: 0,
  });
  const second = await observeState(desired, store, registry);
  t.not(second.basis.observed, first.basis.observed);
  t.equal(second.basis.fleets, first.basis.fleets);
  const edited = [{ ...desired[0]!, spec: fleetSpec({ name: 'a', max_instances: 9 }) }];
  const third = await observeState(edited, store, registry);
  t.not(third.basis.fleets, second.basis.fleets);
});

t.test(
  'cached groups are reused: only groups not seen a moment ago are observed, and no discovery',
  async (t) => {
    const store = await openSqliteStore(':memory:');
    t.teardown(() => store.close());
    let discovered = 0;
    const { provider, calls } = recordingProvider([]);
    provider.discover = async () => {
      discovered++;
      return [];
    };
    const registry = new ProviderRegistry(() => provider);
    const desired = ['a', 'b'].map((name) => ({
      spec: fleetSpec({ name }),
      source: { file: `fleets/${name}.yaml`, line: 1 },
    }));
    const first = await observeState(desired.slice(0, 1), store, registry);
    t.equal(discovered, 1);
    const second = await observeState(desired, store, registry, { cachedGroups: first.observed.groups });
    t.same(
      calls.map((refs) => refs.map((r) => r.fleet)),
      [['a'], ['b']],
      'only the new fleet is observed',
    );
    t.equal(discovered, 1, 'a cached pass does not look for orphans');
    t.same(second.observed.groups.map((g) => g.ref.fleet).sort(), ['a', 'b']);
  },
);
