/**
 * The pure planner: desired fleets + observed state -> Plan. No I/O, no clock: `now` and the basis
 * hashes are arguments, so the same input always gives the same plan. Indexes everything by fleet
 * up front, so planning is linear in fleets + instances (1,000 fleets × 100 instances in well under
 * half a second).
 */
import type { DesiredFleet, Fleet } from '../model/fleet.js';
import { describeGroup, groupRefFor } from '../model/group.js';
import type { GroupRef, LedgerInstance, ObservedGroup, ObservedState } from '../model/observed.js';
import { PLAN_FORMAT, type CapacityPlan, type Diagnostic, type FleetPlan, type Plan } from '../model/plan.js';
import { decideCapacity, type CapacityInstance } from './capacity.js';
import { mergeInstances } from './instances.js';
import { policyAt } from './policy.js';
import { diffSpecs } from './spec-diff.js';
import { NO_GROUP_DIFF, type GroupDiff } from '../model/settings-diff.js';

export interface PlanInput {
  desired: DesiredFleet[];
  observed: ObservedState;
  now: Date;
  /** Hashes of what the plan is made from, copied into the plan (see `basisOf` in apply/observe). */
  basis: { observed: string; fleets: string };
  /**
   * What the manager that will carry the plan out adds to each fleet's decision (the daemon's
   * readiness backoff, `scale_throttle`, the jobs running right now). The planner applies it, so
   * the plan is exactly what apply does and what status shows. Absent for `runfleet plan`.
   */
  constraints?: Readonly<Record<string, FleetConstraints>>;
  /**
   * Per fleet: its group's provider-managed settings that differ, as each provider diffs them
   * (`Provider.diffGroup`, gathered by apply/observe). Absent: the provider manages none.
   */
  groupChanges?: Readonly<Record<string, GroupDiff>>;
}

/** Limits on one fleet's plan; every field is optional and only ever takes away. */
export interface FleetConstraints {
  /** Request at most this many new instances now. */
  maxIncrease?: number;
  /** Why `maxIncrease` holds an increase back; appended to the capacity reason when it does. */
  increaseNote?: string;
  /**
   * Instances holding a job right now (fresher than the ledger's count): never removed, and a
   * deleted fleet's group waits for them instead of ending their jobs.
   */
  busy?: ReadonlySet<string>;
  /** Plan no configuration change, capacity only (manual fleets, fleets held on a last good file). */
  capacityOnly?: boolean;
}

interface FleetContext {
  groups: ObservedGroup[];
  ledger: Map<string, LedgerInstance>;
}

const NO_DEMAND = { acquired: 0, reserved: 0, pending: 0 };

/**
 * Plans every fleet that is desired or applied, sorted by name:
 * - `create`: desired, not applied; or applied but its group vanished (drift: warned, recreated);
 * - `update`: the spec differs from the applied one, or provider group settings differ
 *   (`group.<key>`, as the fleet's provider diffs them); changes that point the fleet at another
 *   group (provider type, region, group name) force replacement;
 * - `delete`: applied, no longer desired: every instance removed (reason `fleet_deleted`), target 0;
 * - `noop`: nothing to configure (capacity may still change).
 * The summary counts like Terraform: a created fleet is 1 add, a changed one 1 change, a replaced
 * one 1 add + 1 destroy, a deleted one 1 destroy; each new instance 1 add, each removed one 1 destroy.
 */
export function planFleets(input: PlanInput): Plan {
  const { observed, now } = input;
  const desired = new Map<string, DesiredFleet>();
  const duplicates = new Set<string>();
  for (const d of input.desired) {
    if (desired.has(d.spec.name)) duplicates.add(d.spec.name);
    desired.set(d.spec.name, d);
  }
  const applied = new Map(observed.fleets.map((f) => [f.name, f.spec]));
  const contexts = indexByFleet(observed);

  const names = [...new Set([...desired.keys(), ...applied.keys()])].sort();
  const fleets: FleetPlan[] = [];
  const summary = { add: 0, change: 0, destroy: 0 };
  for (const name of names) {
    const context = contexts.get(name) ?? { groups: [], ledger: new Map() };
    const want = desired.get(name);
    const limits = input.constraints?.[name] ?? {};
    const fleetPlan = want
      ? planDesired(want, applied.get(name), context, observed, now, limits, input.groupChanges?.[name])
      : planDeleted(applied.get(name) as Fleet, context, limits);
    if (duplicates.has(name)) {
      fleetPlan.diagnostics.push({
        severity: 'error',
        code: 'DUPLICATE_FLEET',
        message: `fleet "${name}" is defined more than once`,
        hint: 'fleet names must be unique across fleets/*.yaml',
      });
    }
    count(fleetPlan, summary);
    fleets.push(fleetPlan);
  }
  return {
    format: PLAN_FORMAT,
    createdAt: now.toISOString(),
    basis: { ...input.basis },
    fleets,
    summary,
    diagnostics: [...(observed.diagnostics ?? [])],
    errored:
      fleets.some((f) => f.diagnostics.some((d) => d.severity === 'error')) ||
      (observed.diagnostics ?? []).some((d) => d.severity === 'error'),
  };
}

function indexByFleet(observed: ObservedState): Map<string, FleetContext> {
  const contexts = new Map<string, FleetContext>();
  const contextOf = (fleet: string) => {
    let c = contexts.get(fleet);
    if (!c) contexts.set(fleet, (c = { groups: [], ledger: new Map() }));
    return c;
  };
  for (const g of observed.groups) contextOf(g.ref.fleet).groups.push(g);
  for (const row of observed.ledger) contextOf(row.fleet).ledger.set(row.id, row);
  return contexts;
}

const sameRef = (a: GroupRef, b: GroupRef) => a.provider === b.provider && a.name === b.name;

function planDesired(
  want: DesiredFleet,
  before: Fleet | undefined,
  context: FleetContext,
  observed: ObservedState,
  now: Date,
  limits: FleetConstraints,
  settings: GroupDiff = NO_GROUP_DIFF,
): FleetPlan {
  const spec = want.spec;
  const ref = groupRefFor(spec);
  const group = context.groups.find((g) => sameRef(g.ref, ref));
  const groupExists = group?.exists === true;
  const diagnostics: Diagnostic[] = [...(group?.diagnostics ?? []), ...(settings.diagnostics ?? [])];

  // A replacement points the fleet at another group (provider, region or group name changed), so that
  // group not existing yet is expected, not drift.
  const specDiff = before ? diffSpecs(before, spec) : undefined;
  const movesGroup = specDiff?.changes.some((c) => c.forcesReplacement) === true;

  let action: FleetPlan['action'];
  let diff;
  if (before && !groupExists && !movesGroup) {
    // Drift: the store says applied, the provider shows no group. Terraform drops such a resource
    // from state and creates it again; so do we.
    diagnostics.push({
      severity: 'warning',
      code: 'GROUP_MISSING',
      message: `${ref.provider} group ${ref.name} of fleet "${spec.name}" no longer exists (changed outside runfleet)`,
      hint: 'this plan creates it again; find out what removed it if that was not intended',
    });
    action = 'create';
    diff = diffSpecs(undefined, spec);
  } else if (!before) {
    action = 'create';
    diff = diffSpecs(undefined, spec);
  } else {
    diff = specDiff ?? diffSpecs(before, spec);
    action = 'update';
  }
  let changes = [...diff.changes, ...settings.changes];
  if (limits.capacityOnly) {
    action = 'noop';
    changes = [];
  }
  if (action === 'update' && changes.length === 0) action = 'noop';
  if (before && movesGroup) {
    diagnostics.push({
      severity: 'warning',
      code: 'GROUP_REPLACED',
      message: `fleet "${spec.name}" moves from ${describeGroup(before)} to ${describeGroup(spec)}`,
      hint: 'instances of the old group are not moved: they stop getting jobs and must be drained and removed there',
    });
  }

  const fleetPlan: FleetPlan = {
    fleet: spec.name,
    source: { ...want.source },
    provider: ref.provider,
    group: ref.name,
    action,
    changes,
    unchanged: diff.unchanged + settings.unchanged,
    diagnostics,
  };
  const instances = groupExists && group ? capacityInstances(group, context.ledger, now, limits.busy) : [];
  const capacity = planCapacity(spec, instances, observed, now);
  if ('error' in capacity) diagnostics.push(capacity.error);
  else
    fleetPlan.capacity = group?.fixedCapacity ? fixedCapacity(capacity, instances) : hold(capacity, limits);
  return fleetPlan;
}

/** Applies the manager's creation limit to a capacity decision. */
function hold(decision: CapacityPlan, limits: FleetConstraints): CapacityPlan {
  const max = limits.maxIncrease;
  if (max === undefined || decision.increase <= max) return decision;
  const allowed = Math.max(0, max);
  return {
    ...decision,
    increase: allowed,
    held: decision.increase - allowed,
    reason: limits.increaseNote ? `${decision.reason}; ${limits.increaseNote}` : decision.reason,
  };
}

/** The ledger's view, with the manager's live knowledge of which instances run a job now. */
function withBusy(merged: CapacityInstance[], busy: ReadonlySet<string> | undefined): CapacityInstance[] {
  if (!busy || busy.size === 0) return merged;
  return merged.map((i) => (busy.has(i.id) && i.acquired <= 0 ? { ...i, acquired: 1 } : i));
}

/**
 * The instances capacity reasons about: the merged provider/ledger view, plus one `creating`
 * placeholder per instance the provider was asked for but does not list yet, so a slow launch
 * is never requested twice.
 */
function capacityInstances(
  group: ObservedGroup,
  ledger: Map<string, LedgerInstance>,
  now: Date,
  busy: ReadonlySet<string> | undefined,
): CapacityInstance[] {
  const merged = withBusy(mergeInstances(group.instances, ledger), busy);
  for (let i = 0; i < (group.requested ?? 0); i++) {
    merged.push({
      id: `(requested ${i + 1})`,
      state: 'creating',
      created_at: now.toISOString(),
      use_count: 0,
      acquired: 0,
      healthy: true,
    });
  }
  return merged;
}

/** A provider that cannot add or remove instances: show the capacity, plan no action. */
function fixedCapacity(decision: CapacityPlan, instances: CapacityInstance[]): CapacityPlan {
  const usable = instances.filter((i) => i.healthy && i.state !== 'deleting').length;
  return {
    current: usable,
    target: usable,
    reason: `fixed capacity: ${usable} of ${instances.length} host(s) usable (wanted ${decision.target})`,
    increase: 0,
    remove: [],
  };
}

function planCapacity(
  spec: Fleet,
  instances: CapacityInstance[],
  observed: ObservedState,
  now: Date,
): CapacityPlan | { error: Diagnostic } {
  try {
    const { policy, index } = policyAt(spec.policy, now);
    const demand = observed.demand[spec.name] ?? NO_DEMAND;
    const decision = decideCapacity({ fleet: spec, policy, now, instances, demand });
    if (index < 0) decision.reason += '; no policy period matches now, so idle_count 0';
    return decision;
  } catch (e) {
    const err = e as Error & { hint?: string };
    const error: Diagnostic = {
      severity: 'error',
      code: 'POLICY_INVALID',
      message: `fleet "${spec.name}": ${err.message}`,
    };
    if (err.hint) error.hint = err.hint;
    return { error };
  }
}

/**
 * A fleet whose file is gone: every instance removed, then its group. When the manager names busy
 * instances (`limits.busy`, the daemon), their jobs are not ended: the idle ones go now, and the
 * fleet and its group stay until a later plan finds the busy ones idle. `runfleet apply` names
 * none, so it removes everything (and warns about the jobs it ends).
 */
function planDeleted(before: Fleet, context: FleetContext, limits: FleetConstraints): FleetPlan {
  const ref = groupRefFor(before);
  const group = context.groups.find((g) => sameRef(g.ref, ref));
  const instances = group?.exists
    ? withBusy(mergeInstances(group.instances, context.ledger), limits.busy)
    : [];
  const diagnostics: Diagnostic[] = [...(group?.diagnostics ?? [])];
  const leaving = instances.filter((i) => i.state !== 'deleting').sort((a, b) => (a.id < b.id ? -1 : 1));
  const busy = leaving.filter((i) => i.acquired > 0);
  const waits = limits.busy !== undefined && busy.length > 0;
  if (busy.length > 0 && !waits) {
    diagnostics.push({
      severity: 'warning',
      code: 'BUSY_INSTANCES',
      message: `fleet "${before.name}" has ${busy.length} instance(s) running jobs: ${busy.map((i) => i.id).join(', ')}`,
      hint: 'deleting the fleet ends those jobs; wait for them, or keep the fleet file with idle_count 0 until they finish',
    });
  }
  const removed = waits ? leaving.filter((i) => i.acquired <= 0) : leaving;
  return {
    fleet: before.name,
    provider: ref.provider,
    group: ref.name,
    action: waits ? 'noop' : 'delete',
    changes: waits ? [] : diffSpecs(before, undefined).changes,
    unchanged: 0,
    capacity: {
      current: instances.filter((i) => i.state === 'creating' || i.state === 'ready' || i.state === 'in_use')
        .length,
      target: 0,
      reason: waits
        ? `fleet removed from configuration; the group goes once ${busy.length} busy instance(s) finish their jobs`
        : 'fleet removed from configuration',
      increase: 0,
      remove: removed.map((i) => ({ id: i.id, reason: 'fleet_deleted' })),
    },
    diagnostics,
  };
}

function count(fp: FleetPlan, summary: Plan['summary']): void {
  const replaced = fp.changes.some((c) => c.forcesReplacement);
  if (fp.action === 'create') summary.add++;
  else if (fp.action === 'delete') summary.destroy++;
  else if (fp.action === 'update' && replaced) {
    summary.add++;
    summary.destroy++;
  } else if (fp.action === 'update') summary.change++;
  summary.add += fp.capacity?.increase ?? 0;
  summary.destroy += fp.capacity?.remove.length ?? 0;
}
