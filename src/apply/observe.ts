/**
 * Gathers everything the planner needs from the world: the store's applied fleets and ledger, and
 * each provider's view of the groups of desired and applied fleets, observed in one batched call
 * per provider. Also computes the plan basis: hashes that change whenever what a plan was made from
 * changes, so a saved plan can be refused as stale.
 */
import type { DesiredFleet, Fleet } from '../model/fleet.js';
import { groupRefFor } from '../model/group.js';
import type { Demand, GroupRef, ObservedGroup, ObservedState } from '../model/observed.js';
import type { Diagnostic } from '../model/plan.js';
import type { GroupDiff } from '../model/settings-diff.js';
import type { ProviderRegistry } from '../providers/registry.js';
import type { StateStore } from '../store/store.js';
import { hashOf } from '../util/hash.js';

export interface ObserveResult {
  observed: ObservedState;
  basis: { observed: string; fleets: string };
  /** Per desired fleet: its provider's diff of the group's managed settings (`Provider.diffGroup`). */
  groupChanges: Record<string, GroupDiff>;
}

export async function observeState(
  desired: DesiredFleet[],
  store: StateStore,
  providers: ProviderRegistry,
  opts: {
    demand?: Record<string, Demand>;
    signal?: AbortSignal;
    /**
     * Provider groups observed a moment ago, reused instead of asking the providers again (the
     * daemon reacting to demand between ticks). Store reads are always fresh.
     */
    cachedGroups?: ObservedGroup[];
  } = {},
): Promise<ObserveResult> {
  const [applied, ledger] = await Promise.all([store.listFleets(), store.listInstances()]);
  // A fleet is observed through its desired spec when it has one, else through the applied one
  // (a removed fleet file still has a group to tear down).
  const specs = new Map<string, Fleet>();
  for (const a of applied) specs.set(a.name, a.spec);
  for (const d of desired) specs.set(d.spec.name, d.spec);

  const groups: ObservedGroup[] = [];
  const diagnostics: Diagnostic[] = [];
  const cached = new Map((opts.cachedGroups ?? []).map((g) => [refKey(g.ref), g]));
  for (const { provider, refs } of providers.partition([...specs.values()])) {
    // Reuse what was observed a moment ago; ask the provider only for groups not seen then.
    const fresh = refs.filter((r) => !cached.has(refKey(r)));
    for (const r of refs) {
      const hit = cached.get(refKey(r));
      if (hit) groups.push(hit);
    }
    if (fresh.length > 0) groups.push(...(await provider.observe(fresh, opts.signal)));
    // Orphan groups are looked for on full observations only: a cached pass adds no API calls.
    if (provider.discover && !opts.cachedGroups) {
      diagnostics.push(...orphanGroups(await provider.discover(opts.signal), specs));
    }
  }
  const observed: ObservedState = { fleets: applied, groups, ledger, demand: opts.demand ?? {}, diagnostics };
  return {
    observed,
    basis: basisOf(observed, desired),
    groupChanges: groupChangesOf(desired, groups, providers),
  };
}

/** Each desired fleet's group settings as its provider diffs them; pure, no provider calls. */
function groupChangesOf(
  desired: DesiredFleet[],
  groups: ObservedGroup[],
  providers: ProviderRegistry,
): Record<string, GroupDiff> {
  const out: Record<string, GroupDiff> = {};
  const byRef = new Map(groups.map((g) => [refKey(g.ref), g]));
  for (const { spec } of desired) {
    const diff = providers.forFleet(spec).diffGroup;
    if (diff) out[spec.name] = diff(spec, byRef.get(refKey(groupRefFor(spec))));
  }
  return out;
}

const refKey = (ref: GroupRef) => `${ref.provider}\u0000${ref.name}`;

/** Groups tagged as runfleet's that no fleet (desired or applied) accounts for: shown, never deleted. */
function orphanGroups(discovered: GroupRef[], known: Map<string, Fleet>): Diagnostic[] {
  return discovered
    .filter((ref) => {
      const fleet = known.get(ref.fleet);
      return !fleet || groupRefFor(fleet).name !== ref.name;
    })
    .map((ref) => ({
      severity: 'warning' as const,
      code: 'ORPHAN_GROUP',
      message: `${ref.provider} group ${ref.name} is tagged as runfleet's for fleet "${ref.fleet}", but no fleet file defines it`,
      hint: `restore the fleet file to manage it again, or remove the group by hand; runfleet never deletes it on its own`,
    }));
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
