/**
 * The status report `runfleet status` prints: from the running daemon (`GET /v1/status`), which
 * knows slots and readiness, or, with no daemon, from the store alone. Plain JSON.
 */
import type { Fleet, PolicySpec } from '../model/fleet.js';
import { groupRefFor } from '../model/group.js';
import type { LedgerInstance } from '../model/observed.js';
import { policyAt } from '../plan/index.js';
import type { SlotCounts } from '../runtime/slots/types.js';
import type { StateStore } from '../store/store.js';
import type { Time } from '../util/time.js';
import type { RunnerStatus } from '../runtime/fleet-runners.js';
import type { OutOfService } from './host-recovery.js';
import type { ProviderErrorStatus } from './provider-errors.js';

export type DaemonState = 'starting' | 'running' | 'draining' | 'stopped' | 'failed';

/** The policy in force, with the fields of the fleet's policy that status shows. */
export interface PolicyStatus extends Pick<
  PolicySpec,
  'periods' | 'timezone' | 'idle_count' | 'idle_time' | 'scale_factor' | 'scale_factor_limit'
> {
  /** Position in the fleet's policy list; -1 when no period matches (idle_count 0). */
  index: number;
}

export interface InstanceStatus {
  id: string;
  state: LedgerInstance['state'];
  use_count: number;
  acquired: number;
  health_failures: number;
  drain_reason?: string;
  created_at: string;
  ready_at?: string;
  last_used_at?: string;
  /** A fixed host out of service as unhealthy: why, and its last trial (daemon only). */
  out_of_service?: OutOfService;
}

export interface FleetStatus {
  name: string;
  provider: string;
  group: string;
  mode: 'auto' | 'manual';
  /** See `FleetView.status`; `applied` when read from the store without a daemon. */
  status: 'active' | 'held' | 'removing' | 'unapplied' | 'applied';
  source?: { file: string; line: number };
  /** State in PostgreSQL: the manager whose lease the fleet is under (null: none now), and its term. */
  owner?: string | null;
  term?: number;
  policy?: PolicyStatus;
  capacity_per_instance?: number;
  max_instances?: number;
  /** The capacity decision of the last pass. */
  capacity?: { current: number; target: number; reason: string };
  instances: InstanceStatus[];
  /** Instances tagged for this fleet outside its group (never deleted; daemon only). */
  orphans?: string[];
  /** The last provider call of this fleet that failed (daemon only). */
  provider_error?: ProviderErrorStatus;
  /** Only from the daemon: slots live in its memory. */
  slots?: SlotCounts;
  /** Errors in the fleet's file, and in its last plan (duplicate name, invalid policy, ...). */
  config_errors: string[];
  /** Manual fleets: file changes awaiting `runfleet apply`. */
  pending_changes: number;
  /** ISO time until which new instances are held back after readiness failures. */
  backoff_until?: string;
  /** The fleet's GitLab runner in the job runtime (fleets with a `gitlab` block, daemon only). */
  runner?: RunnerStatus;
}

export type { RunnerStatus };

export interface StatusReport {
  source: 'daemon' | 'store';
  generated_at: string;
  daemon?: {
    state: DaemonState;
    pid: number;
    started_at: string;
    last_pass_at?: string;
    listen?: string;
  };
  fleets: FleetStatus[];
  config_errors: string[];
  /** Groups tagged as runfleet's that no fleet defines (never deleted; daemon only). */
  orphans?: string[];
}

export function policyStatus(spec: Fleet, now: Date): PolicyStatus | undefined {
  try {
    const { policy, index } = policyAt(spec.policy, now);
    return {
      index,
      periods: policy.periods,
      timezone: policy.timezone,
      idle_count: policy.idle_count,
      idle_time: policy.idle_time,
      scale_factor: policy.scale_factor,
      scale_factor_limit: policy.scale_factor_limit,
    };
  } catch {
    return undefined;
  }
}

export function instanceStatus(row: LedgerInstance): InstanceStatus {
  const s: InstanceStatus = {
    id: row.id,
    state: row.state,
    use_count: row.use_count,
    acquired: row.acquired,
    health_failures: row.health_failures,
    created_at: row.created_at,
  };
  if (row.drain_reason) s.drain_reason = row.drain_reason;
  if (row.ready_at) s.ready_at = row.ready_at;
  if (row.last_used_at) s.last_used_at = row.last_used_at;
  return s;
}

/** Status without a daemon: applied fleets and the ledger, with the policy in force now. */
export async function statusFromStore(store: StateStore, time: Time): Promise<StatusReport> {
  const now = time.now();
  const [fleets, ledger] = await Promise.all([store.listFleets(), store.listInstances()]);
  return {
    source: 'store',
    generated_at: now.toISOString(),
    config_errors: [],
    fleets: fleets.map((f) => {
      const ref = groupRefFor(f.spec);
      const policy = policyStatus(f.spec, now);
      return {
        name: f.name,
        provider: ref.provider,
        group: ref.name,
        mode: f.spec.apply,
        status: 'applied',
        ...(policy ? { policy } : {}),
        capacity_per_instance: f.spec.capacity_per_instance,
        max_instances: f.spec.max_instances,
        instances: ledger.filter((i) => i.fleet === f.name).map(instanceStatus),
        config_errors: [],
        pending_changes: 0,
      };
    }),
  };
}
