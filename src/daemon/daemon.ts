/**
 * The `runfleet watch` daemon: keeps every fleet converged on its definition and its demand.
 *
 * Lifecycle (every transition logged; calls in the wrong state throw FleetError(INTERNAL)):
 *   starting → running → draining → stopped, or → failed when start-up fails (`daemon-state.ts`).
 * Passes (observe → plan → apply, see `reconcile.ts`) run one at a time; whatever arrives while one
 * runs (demand events, config reloads, ticks) is folded into one follow-up pass. Demand changes
 * start a pass at once; the tick observes providers every `intervalMs`, or every
 * `expectingIntervalMs` while instances are being created, probed or deleted (`pass-loop.ts`).
 * Idle ready instances are heartbeated; one failing `failure_threshold` (3) times in a row is
 * taken out of service and replaced (`health-checker.ts`).
 *
 * The daemon holds the state lock (operation `watch`) from start to stop; a `runfleet apply`
 * meanwhile goes through it (`approve`) instead of writing the state itself. A lock left by a process
 * on this host that is gone is taken over at start (`apply/state-lock.ts`). Every collaborator,
 * the time included, is injected (`daemon-options.ts`).
 */
import { ErrorCode, FleetError, asError } from '../errors.js';
import type { SlotScheduler } from '../runtime/slots/scheduler.js';
import type { LedgerWriter } from '../store/ledger-writer.js';
import { systemTime, type Time } from '../util/time.js';
import { reloadFleetFiles } from './config-reload.js';
import {
  defaultSystemId,
  resolveSettings,
  type DaemonOptions,
  type DaemonSettings,
} from './daemon-options.js';
import { DaemonLifecycle } from './daemon-state.js';
import { FleetConfig, specsByName } from './fleet-config.js';
import { resolveAfterRestart, type SyncDeps } from './instance-sync.js';
import { HealthChecker } from './health-checker.js';
import { HostRecovery } from './host-recovery.js';
import { ProviderErrors } from './provider-errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { DaemonMetrics } from './metrics.js';
import { PassLoop } from './pass-loop.js';
import { ReadinessBackoff } from './readiness-backoff.js';
import { ReadinessRunner } from './readiness-runner.js';
import { Reconciler } from './reconcile.js';
import { deleteInstancesOnShutdown, waitForRunningJobs } from './shutdown.js';
import { buildStatus, metricsInputs } from './snapshot.js';
import type { DaemonState, StatusReport } from './status.js';
import { StateLock } from '../apply/state-lock.js';

export type { DaemonOptions } from './daemon-options.js';

/** How soon a takeover that failed (the database unreachable) is tried again. */
const TAKEOVER_RETRY_MS = 1_000;

export class Daemon {
  readonly slots: SlotScheduler;
  readonly metrics: DaemonMetrics;
  readonly startedAt: Date;
  private readonly time: Time;
  private readonly logger: Logger;
  private readonly settings: DaemonSettings;
  private readonly ledger: LedgerWriter;
  /** What every instance-keeping step works with (sync, readiness, removals). */
  private readonly instances: SyncDeps;
  private readonly config = new FleetConfig();
  private readonly backoff: ReadinessBackoff;
  private readonly readiness: ReadinessRunner;
  private readonly health: HealthChecker;
  private readonly recovery: HostRecovery;
  private readonly providerErrors: ProviderErrors;
  private readonly passes: PassLoop;
  private readonly lock: StateLock;
  private readonly lifecycle: DaemonLifecycle;
  private started = false;
  private unsubscribe: (() => void) | undefined;
  /** With leases: the owned fleets taken over so far (`ownershipChanged`); the others wait. */
  private readonly takenOver = new Set<string>();
  /** Gained fleets whose takeover has not succeeded yet. */
  private readonly pendingTakeover = new Set<string>();

  constructor(private readonly opts: DaemonOptions) {
    this.time = opts.time ?? systemTime;
    this.logger = opts.logger ?? silentLogger;
    this.settings = resolveSettings(opts);
    this.startedAt = this.time.now();
    this.ledger = opts.ledger;
    this.metrics = opts.metrics ?? new DaemonMetrics(opts.systemId ?? defaultSystemId());
    this.slots = opts.slots;
    this.providerErrors = new ProviderErrors(this.metrics, this.time);
    const onProviderError = (fleet: string, during: string, e: unknown) =>
      this.providerErrors.record(fleet, during, e);
    this.instances = {
      onProviderError,
      store: opts.store,
      ledger: this.ledger,
      providers: opts.providers,
      slots: this.slots,
      time: this.time,
      logger: this.logger,
    };
    this.backoff = new ReadinessBackoff(opts.backoff);
    const reconciler = new Reconciler({
      ...this.instances,
      metrics: this.metrics,
      backoff: this.backoff,
      observeMaxAgeMs: this.settings.observeMaxAgeMs,
    });
    this.readiness = new ReadinessRunner({
      ...this.instances,
      time: this.time,
      probe: opts.probe,
      backoff: this.backoff,
      metrics: this.metrics,
      readyTimeoutMs: this.settings.readyTimeoutMs,
      onDone: () => this.passes.request('readiness'),
    });
    this.health = new HealthChecker({
      ...this.instances,
      time: this.time,
      metrics: this.metrics,
      intervalMs: this.settings.heartbeatIntervalMs,
      specs: () => this.passes.specs(),
      active: () => this.lifecycle.state === 'running',
      onUnhealthy: () => this.passes.request('health'),
    });
    this.recovery = new HostRecovery({
      ...this.instances,
      probe: opts.probe,
      intervalMs: this.settings.heartbeatIntervalMs,
      active: () => this.lifecycle.state === 'running',
    });
    this.passes = new PassLoop({
      store: opts.store,
      config: this.config,
      reconciler,
      readiness: this.readiness,
      slots: this.slots,
      metrics: this.metrics,
      time: this.time,
      logger: this.logger,
      settings: this.settings,
      state: () => this.lifecycle.state,
      onFleets: opts.onFleets,
      onProviderError,
      ...(opts.owns ? { owns: (fleet: string) => this.takenOver.has(fleet) && opts.owns!(fleet) } : {}),
      // A demand pass may reuse an old observation: only fresh ones make heartbeats cheap (AWS).
      afterPass: (trigger) => {
        if (trigger === 'demand') return;
        this.health.sweep();
        this.recovery.sweep(this.passes.last?.observed.groups ?? [], this.passes.specs());
      },
    });
    this.lock = new StateLock({
      store: opts.store,
      operation: 'watch',
      logger: this.logger,
      holder: opts.lockHolder,
      isHolderAlive: opts.isLockHolderAlive,
    });
    this.lifecycle = new DaemonLifecycle(this.logger);
  }

  get state(): DaemonState {
    return this.lifecycle.state;
  }

  /**
   * Takes the lock, loads the fleets, resolves what a previous run left in flight, adopts the
   * instances it finds, and runs the first pass. Throws (and moves to `failed`) when any of that
   * fails; a LOCKED error names the holder.
   */
  async start(): Promise<void> {
    if (this.started || this.lifecycle.state !== 'starting') this.lifecycle.refuse('start');
    this.started = true;
    try {
      if (this.opts.stateLock !== false) await this.lock.take();
      await this.loadConfig();
      await this.passes.refreshView();
      const restart = await resolveAfterRestart(this.passes.specs(), this.instances);
      if (restart.intents > 0 || restart.retried.length > 0 || restart.drained.length > 0) {
        this.logger.info('resolved state left by a previous run', { event: 'restart', ...restart });
      }
      this.unsubscribe = this.slots.subscribe(() => this.passes.request('demand'));
      this.lifecycle.transition('running');
      this.health.start();
      this.passes.request('start');
      await this.idle();
    } catch (e) {
      this.lifecycle.transition('failed', asError(e).message);
      await this.lock.release();
      throw e;
    }
  }

  /**
   * Graceful stop: no new jobs, running ones get up to `graceMs`, fleets with
   * `delete_instances_on_shutdown` lose their idle instances, then the lock is released.
   */
  async stop(opts: { graceMs?: number } = {}): Promise<void> {
    if (this.lifecycle.state !== 'running') this.lifecycle.refuse('stop');
    this.lifecycle.transition('draining');
    this.slots.stopAccepting();
    const graceMs = opts.graceMs ?? this.settings.shutdownGraceMs;
    // Awaited only when jobs run: otherwise the loop halts in the same turn as stopAccepting, so no
    // slot event of a pass still running can queue another one.
    if (this.slots.activeAcquisitions() > 0) {
      await waitForRunningJobs(this.slots, this.time, this.logger, graceMs);
    }
    this.unsubscribe?.();
    await this.passes.halt();
    this.readiness.abortAll();
    await Promise.all([this.readiness.settled(), this.health.stop(), this.recovery.stop()]);
    await deleteInstancesOnShutdown(this.passes.view.desired, this.instances);
    await this.ledger.flush();
    await this.lock.release();
    this.lifecycle.transition('stopped');
  }

  /**
   * After this manager's set of owned fleets changed (several managers, `lease-keeper.ts`): the
   * fleets gained are taken over like after a restart — their open intents resolved, instances that
   * held jobs drained, everything in their group adopted, nothing deleted that was not seen created
   * — and only then planned by the passes (a lost fleet leaves them, and its runtime stops taking
   * jobs, at once).
   */
  async ownershipChanged(gained: readonly string[], lost: readonly string[] = []): Promise<void> {
    for (const fleet of lost) {
      this.takenOver.delete(fleet);
      this.pendingTakeover.delete(fleet);
    }
    for (const fleet of gained) this.pendingTakeover.add(fleet);
    if (this.lifecycle.state !== 'running') return;
    await this.loadConfig();
    const owns = this.opts.owns ?? (() => true);
    const only = new Set([...this.pendingTakeover].filter(owns));
    if (only.size > 0) {
      const store = this.opts.scope ? this.opts.scope(only) : this.instances.store;
      try {
        const view = this.config.view(await store.listFleets(), (fleet) => only.has(fleet));
        const restart = await resolveAfterRestart(specsByName(view), { ...this.instances, store });
        for (const fleet of only) {
          this.takenOver.add(fleet);
          this.pendingTakeover.delete(fleet);
        }
        this.logger.info('took over fleets', { event: 'takeover', fleets: [...only], ...restart });
      } catch (e) {
        // Not planned until taken over: try again shortly (the database may be back by then).
        this.logger.warn('cannot take over fleets yet; retrying', {
          event: 'takeover',
          fleets: [...only],
          error: asError(e).message,
        });
        this.time.after(TAKEOVER_RETRY_MS, () => void this.ownershipChanged([]));
      }
    }
    await this.passes.refreshView();
    this.passes.request('config');
  }

  /** Re-reads the fleets directory (the file watcher calls this) and plans at once. */
  async reloadConfig(): Promise<void> {
    if (this.lifecycle.state !== 'running') return;
    await this.loadConfig();
    this.passes.request('config');
  }

  /** Lets a manual fleet's file definition be applied once (a reviewed change). */
  approve(fleet: string): void {
    const view = this.passes.view.fleets.find((f) => f.name === fleet);
    if (!view?.file) {
      throw new FleetError(ErrorCode.USAGE, `no fleet file defines ${fleet}`, {
        hint: 'see runfleet status',
      });
    }
    this.config.approve(fleet);
    this.logger.info('manual fleet change approved', { event: 'approve', fleet });
    this.passes.request('config');
  }

  /**
   * Resolves when no pass is queued or running and no readiness probe, heartbeat or host trial is
   * in flight.
   */
  async idle(): Promise<void> {
    for (;;) {
      await this.passes.idle();
      if (!this.health.busy() && !this.recovery.busy()) return;
      // A failed heartbeat may have asked for a pass, a recovered host brings demand: look again.
      await Promise.all([this.health.settled(), this.recovery.settled()]);
    }
  }

  async status(): Promise<StatusReport> {
    const ledger = await this.opts.store.listInstances();
    const lastPassAt = this.passes.lastPassAt;
    const report = buildStatus({
      view: this.passes.view,
      ledger,
      last: this.passes.last,
      slots: this.slots,
      backoff: this.backoff,
      config: this.config,
      outOfService: (row) => this.recovery.why(row),
      providerError: (fleet) => this.providerErrors.lastFor(fleet),
      now: this.time.now(),
      daemon: {
        state: this.lifecycle.state,
        pid: process.pid,
        started_at: this.startedAt.toISOString(),
        ...(lastPassAt ? { last_pass_at: lastPassAt.toISOString() } : {}),
      },
    });
    for (const fleet of report.fleets) {
      const runner = this.opts.runnerStatus?.(fleet.name);
      if (runner) fleet.runner = runner;
    }
    return report;
  }

  async metricsText(): Promise<string> {
    const last = this.passes.last;
    const orphanGroups = (last?.observed.diagnostics ?? []).filter((d) => d.code === 'ORPHAN_GROUP').length;
    this.metrics.refresh(
      metricsInputs(this.passes.view, last, this.slots),
      this.lifecycle.state,
      orphanGroups,
    );
    return this.metrics.text();
  }

  private loadConfig(): Promise<void> {
    return reloadFleetFiles({
      load: this.opts.loadConfig,
      config: this.config,
      logger: this.logger,
      metrics: this.metrics,
    });
  }
}
