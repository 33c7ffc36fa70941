/**
 * Gathers everything the planner needs from the world: the store's applied fleets and ledger, and
 * each provider's view of the groups of desired and applied fleets, observed in one batched call
 * per provider. Also computes the plan basis: hashes that change whenever what a plan was made from
 * changes, so a saved plan can be refused as stale.
 */
import type { DesiredFleet, Fleet } from '../model/fleet.js';
import type { Demand, ObservedGroup, ObservedState } from '../model/observed.js';
import type { ProviderRegistry } from '../providers/registry.js';
import type { StateStore } from '../store/store.js';
import { hashOf } from '../util/hash.js';

export interface ObserveResult {
  observed: ObservedState;
  basis: { observed: string; fleets: string };
}

export async function observeState(
  desired: DesiredFleet[],
  store: StateStore,
  providers: ProviderRegistry,
  opts: { demand?: Record<string, Demand>; signal?: AbortSignal } = {},
): Promise<ObserveResult> {
  const [applied, ledger] = await Promise.all([store.listFleets(), store.listInstances()]);
  // A fleet is observed through its desired spec when it has one, else through the applied one
  // (a removed fleet file still has a group to tear down).
  const specs = new Map<string, Fleet>();
  for (const a of applied) specs.set(a.name, a.spec);
  for (const d of desired) specs.set(d.spec.name, d.spec);

  const groups: ObservedGroup[] = [];
  for (const { provider, refs } of providers.partition([...specs.values()])) {
    groups.push(...(await provider.observe(refs, opts.signal)));
  }
  const observed: ObservedState = { fleets: applied, groups, ledger, demand: opts.demand ?? {} };
  return { observed, basis: basisOf(observed, desired) };
}

export function basisOf(
  observed: ObservedState,
  desired: DesiredFleet[],
): { observed: string; fleets: string } {
  return {
    observed: hashOf({
      fleets: observed.fleets.map((f) => [f.name, f.hash]).sort(),
      groups: observed.groups
        .map((g) => ({
          ref: g.ref,
          exists: g.exists,
          settings: g.settings,
          instances: g.instances.map((i) => [i.id, i.state, i.healthy ?? true]).sort(),
        }))
        .sort((a, b) => (a.ref.fleet < b.ref.fleet ? -1 : 1)),
      ledger: observed.ledger
        .map((i) => [i.fleet, i.id, i.state, i.use_count, i.acquired, i.health_failures])
        .sort(),
    }),
    fleets: hashOf(desired.map((d) => d.spec).sort((a, b) => (a.name < b.name ? -1 : 1))),
  };
}
