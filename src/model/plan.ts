/**
 * The plan: plain JSON, versioned, produced by the pure planner and consumed by apply and the
 * renderers. Nothing here may hold a secret value: secret references render as `(sensitive value)`.
 */

export interface Diagnostic {
  severity: 'error' | 'warning';
  code: string;
  message: string;
  hint?: string;
}

export interface AttributeChange {
  /** Dotted path in the fleet spec (`policy[0].idle_count`) or `group.<setting>` for provider settings. */
  path: string;
  /** undefined when the attribute is added. */
  old?: unknown;
  /** undefined when the attribute is removed. */
  new?: unknown;
  forcesReplacement?: boolean;
  sensitive?: boolean;
}

export type RemovalReason =
  'idle_time' | 'max_use_count' | 'unhealthy' | 'orphan' | 'scale_in' | 'spot' | 'fleet_deleted';

export interface InstanceRemoval {
  id: string;
  reason: RemovalReason;
  /** Human detail, e.g. "idle 25m > idle_time 20m". */
  detail?: string;
}

export interface CapacityPlan {
  /** Usable instances now (creating, ready, in use; not draining or deleting). */
  current: number;
  /** Instances wanted after this plan. */
  target: number;
  /** Why the target is what it is, e.g. "idle_count 4 slots / 2 per instance". */
  reason: string;
  /** Instances to ask the provider for now. */
  increase: number;
  /**
   * Instances the fleet needs but that are not requested now (readiness backoff, `scale_throttle`,
   * shutdown): `reason` says why. Absent when nothing is held back.
   */
  held?: number;
  remove: InstanceRemoval[];
}

export type FleetAction = 'create' | 'update' | 'delete' | 'noop';

export interface FleetPlan {
  fleet: string;
  source?: { file: string; line: number };
  provider: string;
  /** Provider-side group name. */
  group: string;
  action: FleetAction;
  changes: AttributeChange[];
  /** Count of spec attributes that did not change (Terraform's "unchanged attributes hidden"). */
  unchanged: number;
  capacity?: CapacityPlan;
  diagnostics: Diagnostic[];
}

export const PLAN_FORMAT = 1 as const;

export interface Plan {
  format: typeof PLAN_FORMAT;
  createdAt: string;
  /** Hashes of what the plan was made from; apply refuses a saved plan whose basis moved. */
  basis: { observed: string; fleets: string };
  fleets: FleetPlan[];
  summary: { add: number; change: number; destroy: number };
  /** Findings that belong to no fleet (orphan groups). */
  diagnostics: Diagnostic[];
  /** True when any fleet, or the plan itself, has an error diagnostic: such a plan cannot be applied. */
  errored: boolean;
}
