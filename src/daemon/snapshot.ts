/** Builds the daemon's status report and metric inputs from its last pass and the slot scheduler. */
import { formatIssue } from '../config/index.js';
import { groupRefFor } from '../model/group.js';
import { UNHEALTHY_AFTER_FAILURES } from '../plan/index.js';
import type { LedgerInstance } from '../model/observed.js';
import type { SlotScheduler } from '../runtime/slots/scheduler.js';
import type { ConfigView, FleetConfig } from './fleet-config.js';
import type { OutOfService } from './host-recovery.js';
import type { ProviderErrorStatus } from './provider-errors.js';
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
  providerError?: (fleet: string) => ProviderErrorStatus | undefined;
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
    const orphans = orphanInstances(input.last, f.name);
    const providerError = input.providerError?.(f.name);
    const fileErrors = f.file ? input.config.errorsFor(f.file.source.file).map(formatIssue) : [];
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
      ...(orphans.length > 0 ? { orphans } : {}),
      ...(providerError ? { provider_error: providerError } : {}),
      slots: input.slots.counts(f.name),
      config_errors: [...fileErrors, ...(input.last?.planErrors.get(f.name) ?? [])],
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
    orphans: (input.last?.observed.diagnostics ?? [])
      .filter((d) => d.code === 'ORPHAN_GROUP')
      .map((d) => d.message),
  };
}

function orphanInstances(last: PassOutcome | undefined, fleet: string): string[] {
  return (last?.observed.groups ?? [])
    .filter((g) => g.ref.fleet === fleet)
    .flatMap((g) => g.diagnostics.filter((d) => d.code === 'ORPHAN_INSTANCE').map((d) => d.message));
}

/** Instances taking no new job, by reason: the scheduler's view, or the ledger's after a restart. */
function outOfServiceCounts(last: PassOutcome | undefined, slots: SlotScheduler, fleet: string) {
  const counts: Record<string, number> = {};
  const inSlots = new Map(slots.instances(fleet).map((i) => [i.id, i]));
  for (const row of last?.observed.ledger ?? []) {
    if (row.fleet !== fleet) continue;
    const slot = inSlots.get(row.id);
    const reason =
      row.state === 'draining'
        ? (row.drain_reason ?? 'scale_in')
        : slot && !slot.available
          ? (slot.reason ?? 'unhealthy')
          : !slot && row.health_failures >= UNHEALTHY_AFTER_FAILURES
            ? 'unhealthy'
            : undefined;
    if (reason) counts[reason] = (counts[reason] ?? 0) + 1;
  }
  return counts;
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
        orphanInstances: orphanInstances(last, f.name).length,
        outOfService: outOfServiceCounts(last, slots, f.name),
        planErrors: last?.planErrors.get(f.name)?.length ?? 0,
      },
    ];
  });
}
