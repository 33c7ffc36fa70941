/**
 * What runfleet sees of the world: provider groups and their instances, the store's ledger, and
 * demand from the job runtime. All plain, serialisable data.
 */
import type { Fleet, ProviderType } from './fleet.js';
import type { Diagnostic } from './plan.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Identifies one provider group (an Auto Scaling group, a local pool, a set of static hosts). */
export interface GroupRef {
  fleet: string;
  provider: ProviderType;
  /** Provider-side name: the ASG name for aws, the fleet name for local and static. */
  name: string;
}

/** The provider's own view of an instance (fleeting's states). */
export type ProviderInstanceState = 'creating' | 'running' | 'deleting' | 'gone';

export interface ObservedInstance {
  id: string;
  state: ProviderInstanceState;
  /** ISO time the instance was launched. */
  launched_at: string;
  internal_addr?: string;
  external_addr?: string;
  lifecycle?: 'on-demand' | 'spot';
  /** false when the provider reports the instance unhealthy (e.g. ASG health status). */
  healthy?: boolean;
  /**
   * The provider has notice the instance will be reclaimed soon (a spot interruption): it takes no
   * new job and is removed once idle. Optional: providers that cannot tell leave it out.
   */
  interrupting?: boolean;
  /** Provider-specific facts worth showing (AZ, instance type, ...). */
  details?: Record<string, string>;
}

export interface ObservedGroup {
  ref: GroupRef;
  exists: boolean;
  /**
   * Provider-managed settings as they are now (e.g. ASG min_size, max_size). Compared by the planner
   * against `desiredGroupSettings(fleet)`; only keys present there are diffed.
   */
  settings: Record<string, Json>;
  instances: ObservedInstance[];
  /** Problems the provider found (unmet prerequisites, ownership conflicts, unreachable hosts). */
  diagnostics: Diagnostic[];
  /**
   * Instances the provider was asked for that do not show yet (an ASG's desired capacity above the
   * instances it lists). Counted as `creating`, so a slow launch is not requested twice.
   */
  requested?: number;
  /**
   * The provider cannot create or remove instances (static hosts): capacity is what it shows, and
   * the planner plans no increase or removal.
   */
  fixedCapacity?: boolean;
}

/** runfleet's own lifecycle of an instance, kept in the store's ledger. */
export type LedgerState = 'creating' | 'ready' | 'in_use' | 'draining' | 'deleting' | 'gone';

export type DrainReason =
  'idle_time' | 'max_use_count' | 'unhealthy' | 'spot' | 'scale_in' | 'orphan' | 'fleet_deleted';

export interface LedgerInstance {
  fleet: string;
  id: string;
  provider: ProviderType;
  state: LedgerState;
  created_at: string;
  ready_at?: string;
  use_count: number;
  last_used_at?: string;
  health_failures: number;
  drain_reason?: DrainReason;
  /** Slots currently acquired by running jobs. */
  acquired: number;
}

/** The last applied definition of a fleet: what `plan` diffs the fleet files against. */
export interface AppliedFleet {
  name: string;
  spec: Fleet;
  /** Hash of `spec`, to notice changes cheaply. */
  hash: string;
  applied_at: string;
}

/** Demand on a fleet, in job slots, as the job runtime reports it. */
export interface Demand {
  acquired: number;
  reserved: number;
  pending: number;
}

export interface ObservedState {
  fleets: AppliedFleet[];
  groups: ObservedGroup[];
  ledger: LedgerInstance[];
  /** Per fleet name; absent means no demand. */
  demand: Record<string, Demand>;
  /** Findings that belong to no fleet, e.g. a group tagged as runfleet's that no fleet file defines. */
  diagnostics?: Diagnostic[];
}
