/** Rows as both backends store them (JSON in TEXT columns, NULL for absent), and their objects. */
import type { AppliedFleet, DrainReason, LedgerInstance, LedgerState } from '../model/observed.js';
import type { Fleet, ProviderType } from '../model/fleet.js';
import type { ApplyRecord, Intent } from './store.js';

export interface InstanceRow {
  fleet: string;
  id: string;
  provider: string;
  state: string;
  created_at: string;
  ready_at: string | null;
  use_count: number;
  last_used_at: string | null;
  health_failures: number;
  drain_reason: string | null;
  acquired: number;
}

export interface IntentRow {
  id: number;
  fleet: string;
  action: string;
  detail: string;
  created_at: string;
  closed_at: string | null;
  outcome: string | null;
}

export interface ApplyRow {
  id: number;
  started_at: string;
  finished_at: string;
  plan_hash: string;
  result: ApplyRecord['result'];
  summary: string;
  steps: string;
}

export interface FleetRow {
  name: string;
  spec: string;
  hash: string;
  applied_at: string;
}

export function fleetFromRow(r: FleetRow): AppliedFleet {
  return { name: r.name, spec: JSON.parse(r.spec) as Fleet, hash: r.hash, applied_at: r.applied_at };
}

/** Absent optional fields come back absent (not null), so rows round-trip to equal objects. */
export function instanceFromRow(r: InstanceRow): LedgerInstance {
  const i: LedgerInstance = {
    fleet: r.fleet,
    id: r.id,
    provider: r.provider as ProviderType,
    state: r.state as LedgerState,
    created_at: r.created_at,
    use_count: r.use_count,
    health_failures: r.health_failures,
    acquired: r.acquired,
  };
  if (r.ready_at !== null) i.ready_at = r.ready_at;
  if (r.last_used_at !== null) i.last_used_at = r.last_used_at;
  if (r.drain_reason !== null) i.drain_reason = r.drain_reason as DrainReason;
  return i;
}

export function intentFromRow(r: IntentRow): Intent {
  const i: Intent = {
    id: r.id,
    fleet: r.fleet,
    action: r.action,
    detail: JSON.parse(r.detail) as Record<string, unknown>,
    created_at: r.created_at,
  };
  if (r.closed_at !== null) i.closed_at = r.closed_at;
  if (r.outcome !== null) i.outcome = r.outcome;
  return i;
}

export function applyFromRow(r: ApplyRow): ApplyRecord {
  return {
    id: r.id,
    started_at: r.started_at,
    finished_at: r.finished_at,
    plan_hash: r.plan_hash,
    result: r.result,
    summary: JSON.parse(r.summary) as ApplyRecord['summary'],
    steps: JSON.parse(r.steps) as string[],
  };
}
