/**
 * THE capacity function: how many instances a fleet should have and which ones may go. Used by the
 * planner for `runfleet plan` and by the daemon on every tick. Pure: `now` is an argument.
 */
import type { Fleet, PolicySpec } from '../model/fleet.js';
import type { Demand } from '../model/observed.js';
import type { CapacityPlan, InstanceRemoval, RemovalReason } from '../model/plan.js';
import { formatDuration, parseDuration } from '../util/duration.js';

/** runfleet's lifecycle of a live instance, merged from provider truth and the ledger. */
export type CapacityInstanceState = 'creating' | 'ready' | 'in_use' | 'draining' | 'deleting';

export interface CapacityInstance {
  id: string;
  state: CapacityInstanceState;
  /** ISO times. */
  created_at: string;
  ready_at?: string;
  last_used_at?: string;
  use_count: number;
  /** Slots held by running jobs; an instance with any is busy and never removed. */
  acquired: number;
  healthy: boolean;
  /** Why a `draining` instance drains; it is removed with this reason once idle. */
  drain_reason?: RemovalReason;
}

export interface CapacityInput {
  fleet: Pick<Fleet, 'capacity_per_instance' | 'max_instances' | 'max_use_count'>;
  /** The entry in force at `now` (see `policyAt`). */
  policy: PolicySpec;
  now: Date;
  /** Every instance that is not gone, in any order. */
  instances: CapacityInstance[];
  /** In job slots. */
  demand: Demand;
}

/** `current`, `target`, `increase`, `remove`, `reason`: the plan's capacity part. */
export type CapacityDecision = CapacityPlan;

const USABLE: ReadonlySet<CapacityInstanceState> = new Set(['creating', 'ready', 'in_use']);

/** Ready or in use, holding no slot: the only instances scale-in may pick. */
const isIdle = (i: CapacityInstance) => (i.state === 'ready' || i.state === 'in_use') && i.acquired <= 0;

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * Decides a fleet's capacity, in job slots, as GitLab's taskscaler does. With
 * `cap = capacity_per_instance` and the policy entry in force:
 *
 * ```
 * in_use      = acquired + reserved
 * idle_target = max(idle_count, min(ceil(scale_factor × in_use), scale_factor_limit or ∞))
 * needed      = min(max_instances, ceil((in_use + pending + idle_target) / cap))
 * usable      = instances creating, ready or in use that will take jobs
 * increase    = needed − usable, but never so many that all non-gone instances (deleting ones
 *               included, as GitLab counts them) exceed max_instances
 * ```
 *
 * Removal, never of an instance holding an acquired slot, and never of a `creating` one:
 * - `draining` instances once idle (reason: their drain reason);
 * - `max_use_count` reached (`max_use_count > 0 && use_count >= max_use_count`) once idle; such an
 *   instance is not usable, so it is replaced when still needed. A fresh unused instance never is;
 * - unhealthy idle instances (reason `unhealthy`);
 * - above `max_instances` (it was lowered): idle instances, oldest-idle first (reason `scale_in`);
 * - scale-in: instances idle longer than `idle_time` (since `last_used_at`, else `ready_at`, else
 *   `created_at`), oldest-idle first, while `usable − 1 ≥ needed` (reason `idle_time`).
 *
 * With `idle_count: 0` and no demand `needed` is 0 whatever `cap` is, so the fleet reaches zero
 * (GitLab bug #37643). `max_instances` and `max_use_count` of 0 mean unlimited, as in GitLab.
 * Output order is deterministic: forced removals by id, then scale-in in the order chosen.
 * Throws FleetError(CONFIG_INVALID) if the policy's idle_time is not a duration.
 */
export function decideCapacity(input: CapacityInput): CapacityDecision {
  const { fleet, policy, now, demand } = input;
  const cap = Math.max(1, fleet.capacity_per_instance);
  const maxInstances = fleet.max_instances > 0 ? fleet.max_instances : Infinity;
  const inUse = Math.max(0, demand.acquired) + Math.max(0, demand.reserved);
  const pending = Math.max(0, demand.pending);
  const factorLimit = policy.scale_factor_limit > 0 ? policy.scale_factor_limit : Infinity;
  const fromFactor = Math.min(Math.ceil(policy.scale_factor * inUse), factorLimit);
  const idleTarget = Math.max(policy.idle_count, fromFactor);
  const slots = inUse + pending + idleTarget;
  const wanted = Math.ceil(slots / cap);
  const needed = Math.min(maxInstances, wanted);

  const exhausted = (i: CapacityInstance) => fleet.max_use_count > 0 && i.use_count >= fleet.max_use_count;
  const willTakeJobs = (i: CapacityInstance) => USABLE.has(i.state) && !exhausted(i) && i.healthy;

  const current = input.instances.filter((i) => USABLE.has(i.state)).length;
  const forced: InstanceRemoval[] = [];
  const usableAfterForced: CapacityInstance[] = [];
  let removedUsable = 0;
  for (const inst of input.instances) {
    const removal = forcedRemoval(inst, fleet.max_use_count, exhausted(inst));
    if (removal) {
      forced.push(removal);
      if (USABLE.has(inst.state)) removedUsable++;
    } else if (willTakeJobs(inst)) {
      usableAfterForced.push(inst);
    }
  }
  forced.sort(byId);

  // Scale-in candidates: idle usable instances, oldest idle first (ties by id for determinism).
  const idleTimeMs = parseDuration(policy.idle_time);
  const nowMs = now.getTime();
  const candidates = usableAfterForced
    .filter(isIdle)
    .map((inst) => ({ inst, idleMs: nowMs - Date.parse(idleSince(inst)) }))
    .sort((a, b) => b.idleMs - a.idleMs || byId(a.inst, b.inst));

  let usable = usableAfterForced.length;
  const scaleIn: InstanceRemoval[] = [];
  for (const { inst, idleMs } of candidates) {
    if (usable > maxInstances) {
      scaleIn.push({ id: inst.id, reason: 'scale_in', detail: `above max_instances ${fleet.max_instances}` });
    } else if (usable - 1 >= needed && idleMs > idleTimeMs) {
      const detail = `idle ${wholeSeconds(idleMs)} > idle_time ${formatDuration(idleTimeMs)}`;
      scaleIn.push({ id: inst.id, reason: 'idle_time', detail });
    } else {
      continue;
    }
    usable--;
    removedUsable++;
  }

  // Everything not gone counts against max_instances, including what this plan removes: it stays
  // `deleting` until the provider is done, and GitLab counts deleting instances too.
  const headroom = Math.max(0, maxInstances - input.instances.length);
  const shortfall = Math.max(0, needed - usable);
  const increase = Math.min(shortfall, headroom);
  let reason = describeTarget({
    inUse,
    pending,
    idleTarget,
    fromFactor,
    policy,
    slots,
    cap,
    wanted,
    maxInstances,
  });
  if (increase < shortfall) {
    reason += `; ${shortfall - increase} more wait: ${input.instances.length} instances already count against max_instances`;
  }
  return {
    current,
    target: current - removedUsable + increase,
    reason,
    increase,
    remove: [...forced, ...scaleIn],
  };
}

function forcedRemoval(
  inst: CapacityInstance,
  maxUseCount: number,
  exhausted: boolean,
): InstanceRemoval | undefined {
  if (inst.acquired > 0 || inst.state === 'creating' || inst.state === 'deleting') return undefined;
  if (inst.state === 'draining') {
    return { id: inst.id, reason: inst.drain_reason ?? 'scale_in', detail: 'drained' };
  }
  if (exhausted) {
    return {
      id: inst.id,
      reason: 'max_use_count',
      detail: `used ${inst.use_count} of max_use_count ${maxUseCount}`,
    };
  }
  if (!inst.healthy) return { id: inst.id, reason: 'unhealthy', detail: 'failed health checks' };
  return undefined;
}

/** `25m`, `1h2m3s`: idle ages to the second; sub-second noise would only clutter the plan. */
function wholeSeconds(ms: number): string {
  return formatDuration(Math.max(0, Math.floor(ms / 1000) * 1000));
}

/** When the idle clock started: the last job's end, else readiness, else creation. */
function idleSince(inst: CapacityInstance): string {
  return inst.last_used_at ?? inst.ready_at ?? inst.created_at;
}

interface TargetFigures {
  inUse: number;
  pending: number;
  idleTarget: number;
  fromFactor: number;
  policy: PolicySpec;
  slots: number;
  cap: number;
  wanted: number;
  maxInstances: number;
}

const slots = (n: number) => `${n} ${n === 1 ? 'slot' : 'slots'}`;

/** "idle_count 4 slots / 2 per instance = 2 instances", or the demand form with every term. */
function describeTarget(f: TargetFigures): string {
  const perInstance = `${f.cap} per instance`;
  const capped = f.maxInstances < f.wanted ? `, capped at max_instances ${f.maxInstances}` : '';
  if (f.inUse + f.pending === 0) {
    const noun = f.wanted === 1 ? 'instance' : 'instances';
    return `idle_count ${slots(f.idleTarget)} / ${perInstance} = ${f.wanted} ${noun}${capped}`;
  }
  const limit = capped || (f.maxInstances === Infinity ? '' : ` (max_instances ${f.maxInstances})`);
  const factor =
    f.fromFactor > f.policy.idle_count
      ? ` (scale_factor ${f.policy.scale_factor} × ${f.inUse}` +
        `${f.policy.scale_factor_limit > 0 ? `, limit ${f.policy.scale_factor_limit}` : ''})`
      : '';
  return (
    `demand ${f.inUse} in use + ${f.pending} pending + idle ${f.idleTarget}${factor} = ` +
    `${slots(f.slots)} / ${perInstance} = ${f.wanted}${limit}`
  );
}
