/** Builds the daemon's status report and metric inputs from its last pass and the slot scheduler. */
import { formatIssue } from '../config/index.js';
import { groupRefFor } from '../model/group.js';
import type { LedgerInstance } from '../model/observed.js';
import type { SlotScheduler } from '../runtime/slots/scheduler.js';
import type { ConfigView, FleetConfig } from './fleet-config.js';
import type { OutOfService } from './host-recovery.js';
import type { FleetMetricsInput } from './metrics.js';
import type { ReadinessBackoff } from './readiness-backoff.js';
import type { PassOutcome } from './reconcile.js';
import { instanceStatus, policyStatus, type FleetStatus, type StatusReport } from './status.js';

export interface StatusInput {
  view: ConfigView;
  ledger: LedgerInstance[];
  last: PassOutcome | undefined;
  slots: SlotScheduler;
  backoff: ReadinessBackoff;
  config: FleetConfig;
  /** Why a host waits to be returned to service (fixed-capacity fleets). */
  outOfService?: (row: LedgerInstance) => OutOfService | undefined;
  now: Date;
  daemon: NonNullable<StatusReport['daemon']>;
}

export function buildStatus(input: StatusInput): StatusReport {
  const { view, now } = input;
  const fleets: FleetStatus[] = view.fleets.map((f) => {
    const spec = f.desired?.spec ?? f.file?.spec;
    const ref = spec ? groupRefFor(spec) : undefined;
    const decision = input.last?.decisions.get(f.name);
    const policy = spec ? policyStatus(spec, now) : undefined;
    const source = f.file?.source ?? f.desired?.source;
    const blocked = input.backoff.blockedUntil(f.name, now.getTime());
    return {
      name: f.name,
      provider: ref?.provider ?? 'unknown',
      group: ref?.name ?? f.name,
      mode: f.mode,
      status: f.status,
      ...(source ? { source } : {}),
      ...(policy ? { policy } : {}),
      ...(spec
        ? { capacity_per_instance: spec.capacity_per_instance, max_instances: spec.max_instances }
        : {}),
      ...(decision
        ? { capacity: { current: decision.current, target: decision.target, reason: decision.reason } }
        : {}),
      instances: input.ledger
        .filter((r) => r.fleet === f.name)
        .map((r) => {
          const out = input.outOfService?.(r);
          return { ...instanceStatus(r), ...(out ? { out_of_service: out } : {}) };
        }),
      slots: input.slots.counts(f.name),
      config_errors: f.file ? input.config.errorsFor(f.file.source.file).map(formatIssue) : [],
      pending_changes: f.pendingChanges,
      ...(blocked !== undefined ? { backoff_until: new Date(blocked).toISOString() } : {}),
    };
  });
  return {
    source: 'daemon',
    generated_at: now.toISOString(),
    daemon: input.daemon,
    fleets,
    config_errors: view.errors.map(formatIssue),
  };
}

export function metricsInputs(
  view: ConfigView,
  last: PassOutcome | undefined,
  slots: SlotScheduler,
): FleetMetricsInput[] {
  return view.fleets.flatMap((f) => {
    const spec = f.desired?.spec;
    if (!spec) return [];
    const group = last?.observed.groups.find((g) => g.ref.fleet === f.name);
    const instances = { requested: group?.requested ?? 0, creating: 0, running: 0, deleting: 0 };
    for (const i of group?.instances ?? []) {
      if (i.state === 'creating' || i.state === 'running' || i.state === 'deleting') instances[i.state]++;
    }
    const decision = last?.decisions.get(f.name);
    return [
      {
        fleet: f.name,
        instances,
        maxInstances: spec.max_instances,
        desiredInstances: decision?.target ?? instances.creating + instances.running,
        slots: slots.counts(f.name),
        capacityPerInstance: spec.capacity_per_instance,
        maxUseCount: spec.max_use_count,
        operations: slots.operations(f.name),
      },
    ];
  });
}
