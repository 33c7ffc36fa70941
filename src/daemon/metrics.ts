/**
 * Prometheus metrics. The `fleeting_*` families use GitLab fleeting/taskscaler's names and labels
 * (`runner`, `runner_name`, `system_id`, plus `state` / `operation`), so dashboards built for
 * GitLab's autoscaler work unchanged; `runner` and `runner_name` carry the fleet name. runfleet's
 * own families are `runfleet_*` with a `fleet` label. A private registry: nothing global.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { SlotCounts } from '../runtime/slots/types.js';

const GL = ['runner', 'runner_name', 'system_id'] as const;
type GlLabels = (typeof GL)[number];

/** Boot and readiness take seconds to many minutes. */
const SLOW_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];
const LIFE_BUCKETS = [60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400];

export interface FleetMetricsInput {
  fleet: string;
  /** Provider-level counts: requested (asked for, not yet visible), creating, running, deleting. */
  instances: { requested: number; creating: number; running: number; deleting: number };
  maxInstances: number;
  desiredInstances: number;
  slots: SlotCounts;
  capacityPerInstance: number;
  maxUseCount: number;
  operations: ReadonlyMap<string, number>;
  /** Orphan instances the fleet's provider reports (tagged for it, outside its group). */
  orphanInstances: number;
  /** Instances taking no new job, by reason. */
  outOfService: Record<string, number>;
  planErrors: number;
}

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly seenOperations = new Map<string, number>();

  private readonly provisionerInstances = this.gauge('fleeting_provisioner_instances', 'Instances by state', [
    'state',
  ]);
  private readonly provisionerMax = this.gauge('fleeting_provisioner_max_instances', 'max_instances', []);
  private readonly missedUpdates = this.counter(
    'fleeting_provisioner_missed_updates_total',
    'Reconcile passes that failed or were skipped',
    [],
  );
  private readonly instanceOperations = this.counter(
    'fleeting_provisioner_instance_operations_total',
    'Instance operations (create, delete)',
    ['operation'],
  );
  private readonly creationTime = this.histogram(
    'fleeting_provisioner_instance_creation_time_seconds',
    'From the increase call to the instance showing up at the provider',
  );
  private readonly isRunningTime = this.histogram(
    'fleeting_provisioner_instance_is_running_time_seconds',
    'From launch to the provider reporting the instance running',
  );
  private readonly deletionTime = this.histogram(
    'fleeting_provisioner_instance_deletion_time_seconds',
    'Duration of the decrease call',
  );
  private readonly lifeDuration = new Histogram({
    name: 'fleeting_provisioner_instance_life_duration_seconds',
    help: 'From launch to removal',
    labelNames: [...GL],
    buckets: LIFE_BUCKETS,
    registers: [this.registry],
  });
  private readonly tasks = this.gauge('fleeting_taskscaler_tasks', 'Job slots by state', ['state']);
  private readonly maxTasks = this.gauge(
    'fleeting_taskscaler_max_tasks_per_instance',
    'capacity_per_instance',
    [],
  );
  private readonly maxUse = this.gauge('fleeting_taskscaler_max_use_count_per_instance', 'max_use_count', []);
  private readonly taskOperations = this.counter(
    'fleeting_taskscaler_task_operations_total',
    'Slot operations (reserve, reserve_available_capacity_failure, reserve_iop_capacity_failure, acquire, release, ...)',
    ['operation'],
  );
  private readonly scaleOperations = this.counter(
    'fleeting_taskscaler_scale_operations_total',
    'Scaling decisions carried out (up, down)',
    ['operation'],
  );
  private readonly desired = this.gauge('fleeting_taskscaler_desired_instances', 'Instances wanted', []);
  private readonly readiness = this.histogram(
    'fleeting_taskscaler_task_instance_readiness_time_seconds',
    'From creation to ready (heartbeat and instance_ready_command passed)',
  );

  private readonly reconcileDuration = new Histogram({
    name: 'runfleet_reconcile_duration_seconds',
    help: 'Duration of one observe-plan-apply pass, by what triggered it',
    labelNames: ['trigger'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly configErrors = new Gauge({
    name: 'runfleet_config_errors',
    help: 'Errors in a fleet file; its fleets run on their last good definition',
    labelNames: ['file'],
    registers: [this.registry],
  });
  private readonly lastPlan = new Gauge({
    name: 'runfleet_last_applied_plan_info',
    help: 'Hash of the last plan the daemon applied (value 1)',
    labelNames: ['hash'],
    registers: [this.registry],
  });
  private readonly lastPlanTime = new Gauge({
    name: 'runfleet_last_applied_plan_timestamp_seconds',
    help: 'When the daemon last applied a plan',
    registers: [this.registry],
  });
  private readonly removals = new Counter({
    name: 'runfleet_instance_removals_total',
    help: 'Instances removed, by reason (idle_time, max_use_count, unhealthy, spot, scale_in, fleet_deleted, ...)',
    labelNames: ['fleet', 'reason'],
    registers: [this.registry],
  });
  private readonly readinessFailures = new Counter({
    name: 'runfleet_instance_readiness_failures_total',
    help: 'instance_ready_command or heartbeat failures of new instances',
    labelNames: ['fleet'],
    registers: [this.registry],
  });
  private readonly leasesHeld = new Gauge({
    name: 'runfleet_leases_held',
    help: 'Fleet leases this manager holds (several managers on PostgreSQL)',
    registers: [this.registry],
  });
  private readonly leasesAcquired = new Counter({
    name: 'runfleet_leases_acquired_total',
    help: 'Fleet leases this manager acquired, each as a new term',
    labelNames: ['fleet'],
    registers: [this.registry],
  });
  private readonly leasesLost = new Counter({
    name: 'runfleet_leases_lost_total',
    help: 'Fleet leases this manager gave up (hand-over) or lost (expired, taken over)',
    labelNames: ['fleet'],
    registers: [this.registry],
  });
  private readonly heartbeatFailures = new Counter({
    name: 'runfleet_instance_heartbeat_failures_total',
    help: 'Failed heartbeats of idle ready instances (false or no answer)',
    labelNames: ['fleet'],
    registers: [this.registry],
  });
  private readonly heartbeatUnhealthyTotal = new Counter({
    name: 'runfleet_instance_heartbeat_unhealthy_total',
    help: 'Instances taken out of service after failing their heartbeats failure_threshold times in a row',
    labelNames: ['fleet'],
    registers: [this.registry],
  });
  /** GitLab Runner's name and labels (`runner`, `system_id`, `endpoint`, `status`). */
  private readonly apiRequests = new Counter({
    name: 'gitlab_runner_api_request_statuses_total',
    help: 'The total number of api requests, partitioned by runner, endpoint and status.',
    labelNames: ['runner', 'system_id', 'endpoint', 'status'],
    registers: [this.registry],
  });
  private readonly providerErrors = new Counter({
    name: 'runfleet_provider_errors_total',
    help: 'Provider calls that failed (observe, apply steps, removal retries, heartbeats), by error code',
    labelNames: ['fleet', 'code'],
    registers: [this.registry],
  });
  private readonly providerErrorTime = new Gauge({
    name: 'runfleet_provider_last_error_timestamp_seconds',
    help: "When the fleet's provider last failed a call",
    labelNames: ['fleet'],
    registers: [this.registry],
  });
  private readonly orphans = new Gauge({
    name: 'runfleet_orphans',
    help: "Groups (fleet empty) and instances tagged as runfleet's that no fleet accounts for; never deleted",
    labelNames: ['fleet', 'kind'],
    registers: [this.registry],
  });
  private readonly outOfService = new Gauge({
    name: 'runfleet_instances_out_of_service',
    help: 'Instances that take no new job, by reason (unhealthy, max_use_count, spot, scale_in, ...)',
    labelNames: ['fleet', 'reason'],
    registers: [this.registry],
  });
  private readonly fleetErrors = new Gauge({
    name: 'runfleet_fleet_plan_errors',
    help: "Errors in the fleet's last plan (duplicate names, invalid policy, ownership conflicts): the fleet is left alone",
    labelNames: ['fleet'],
    registers: [this.registry],
  });
  private readonly daemonState = new Gauge({
    name: 'runfleet_daemon_state',
    help: 'The daemon state (1 for the current one)',
    labelNames: ['state'],
    registers: [this.registry],
  });

  constructor(private readonly systemId: string) {}

  /** Sets every gauge from the current state of the fleets; called before each scrape. */
  refresh(
    fleets: readonly FleetMetricsInput[],
    daemonState: string,
    /** Orphan groups (tagged as runfleet's, no fleet defines them). */
    orphanGroups = 0,
  ): void {
    this.provisionerInstances.reset();
    this.tasks.reset();
    this.orphans.reset();
    this.outOfService.reset();
    this.fleetErrors.reset();
    this.orphans.set({ fleet: '', kind: 'group' }, orphanGroups);
    for (const f of fleets) {
      const l = this.labels(f.fleet);
      for (const [state, n] of Object.entries(f.instances)) this.provisionerInstances.set({ ...l, state }, n);
      this.provisionerMax.set(l, f.maxInstances);
      this.desired.set(l, f.desiredInstances);
      this.maxTasks.set(l, f.capacityPerInstance);
      this.maxUse.set(l, f.maxUseCount);
      for (const [state, n] of Object.entries(f.slots)) this.tasks.set({ ...l, state }, n);
      this.orphans.set({ fleet: f.fleet, kind: 'instance' }, f.orphanInstances);
      for (const [reason, n] of Object.entries(f.outOfService))
        this.outOfService.set({ fleet: f.fleet, reason }, n);
      this.fleetErrors.set({ fleet: f.fleet }, f.planErrors);
      for (const [operation, total] of f.operations) {
        const key = `${f.fleet}\u0000${operation}`;
        const delta = total - (this.seenOperations.get(key) ?? 0);
        if (delta > 0) this.taskOperations.inc({ ...l, operation }, delta);
        this.seenOperations.set(key, total);
      }
    }
    this.daemonState.reset();
    this.daemonState.set({ state: daemonState }, 1);
  }

  /** The lease keeper's events (`lease-keeper.ts`). */
  readonly leases = {
    held: (count: number) => this.leasesHeld.set(count),
    acquired: (fleet: string) => this.leasesAcquired.inc({ fleet }),
    lost: (fleet: string) => this.leasesLost.inc({ fleet }),
  };

  reconciled(trigger: string, seconds: number): void {
    this.reconcileDuration.observe({ trigger }, seconds);
  }

  missedUpdate(fleet: string): void {
    this.missedUpdates.inc(this.labels(fleet));
  }

  scaled(fleet: string, operation: 'up' | 'down', instances: number): void {
    if (instances <= 0) return;
    this.scaleOperations.inc({ ...this.labels(fleet), operation });
    this.instanceOperations.inc(
      { ...this.labels(fleet), operation: operation === 'up' ? 'create' : 'delete' },
      instances,
    );
  }

  removed(fleet: string, reason: string): void {
    this.removals.inc({ fleet, reason });
  }

  created(fleet: string, seconds: number): void {
    this.creationTime.observe(this.labels(fleet), seconds);
  }

  running(fleet: string, seconds: number): void {
    this.isRunningTime.observe(this.labels(fleet), seconds);
  }

  deleted(fleet: string, seconds: number): void {
    this.deletionTime.observe(this.labels(fleet), seconds);
  }

  lived(fleet: string, seconds: number): void {
    this.lifeDuration.observe(this.labels(fleet), Math.max(0, seconds));
  }

  ready(fleet: string, seconds: number): void {
    this.readiness.observe(this.labels(fleet), Math.max(0, seconds));
  }

  readinessFailed(fleet: string): void {
    this.readinessFailures.inc({ fleet });
  }

  heartbeatFailed(fleet: string): void {
    this.heartbeatFailures.inc({ fleet });
  }

  providerError(fleet: string, code: string, at: Date): void {
    this.providerErrors.inc({ fleet, code });
    this.providerErrorTime.set({ fleet }, at.getTime() / 1000);
  }

  heartbeatUnhealthy(fleet: string): void {
    this.heartbeatUnhealthyTotal.inc({ fleet });
  }

  setConfigErrors(byFile: ReadonlyMap<string, number>): void {
    this.configErrors.reset();
    for (const [file, n] of byFile) this.configErrors.set({ file }, n);
  }

  appliedPlan(hash: string, at: Date): void {
    this.lastPlan.reset();
    this.lastPlan.set({ hash }, 1);
    this.lastPlanTime.set(at.getTime() / 1000);
  }

  /** One attempt of a GitLab API request of `fleet`'s runner: HTTP status, or -100 (no answer). */
  apiRequest(fleet: string, endpoint: string, status: number): void {
    this.apiRequests.inc({ runner: fleet, system_id: this.systemId, endpoint, status: String(status) });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private labels(fleet: string): Record<GlLabels, string> {
    return { runner: fleet, runner_name: fleet, system_id: this.systemId };
  }

  private gauge<L extends string>(name: string, help: string, extra: L[]) {
    return new Gauge<GlLabels | L>({ name, help, labelNames: [...GL, ...extra], registers: [this.registry] });
  }

  private counter<L extends string>(name: string, help: string, extra: L[]) {
    return new Counter<GlLabels | L>({
      name,
      help,
      labelNames: [...GL, ...extra],
      registers: [this.registry],
    });
  }

  private histogram(name: string, help: string) {
    return new Histogram<GlLabels>({
      name,
      help,
      labelNames: [...GL],
      buckets: SLOW_BUCKETS,
      registers: [this.registry],
    });
  }
}
