/**
 * The `runfleet watch` daemon: keeps every fleet converged on its definition and its demand.
 *
 * Lifecycle (every transition logged; calls in the wrong state throw FleetError(INTERNAL)):
 *   starting → running → draining → stopped, or → failed when start-up fails.
 * Passes (observe → plan → apply, see `reconcile.ts`) run one at a time; whatever arrives while one
 * runs (demand events, config reloads, ticks) is folded into one follow-up pass. Demand changes
 * start a pass at once; the tick observes providers every `intervalMs`, or every
 * `expectingIntervalMs` while instances are being created, probed or deleted.
 *
 * The daemon holds the state lock (operation `watch`) from start to stop, so a `runfleet apply`
 * meanwhile fails with LOCKED naming it. A lock left by a dead `watch` process on this host is
 * taken over at start. Every collaborator, the clock and the timers included, is injected.
 */
import { hostname } from 'node:os';
import type { LoadResult } from '../config/index.js';
import { formatIssue } from '../config/index.js';
import { ErrorCode, FleetError, asError, isFleetError } from '../errors.js';
import type { Fleet } from '../model/fleet.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { LedgerWriter } from '../runtime/slots/ledger-writer.js';
import { SlotScheduler } from '../runtime/slots/scheduler.js';
import { describeLockHolder } from '../store/index.js';
import type { LockInfo, StateStore } from '../store/store.js';
import { systemClock, type Clock } from '../util/clock.js';
import { hashOf } from '../util/hash.js';
import { FleetConfig, type ConfigView } from './fleet-config.js';
import { resolveAfterRestart, retryRemoval, type SyncDeps } from './instance-sync.js';
import { silentLogger, type Logger } from './logger.js';
import { DaemonMetrics } from './metrics.js';
import {
  ReadinessBackoff,
  localReadinessProbe,
  type BackoffOptions,
  type ReadinessProbe,
} from './readiness.js';
import { Reconciler, type PassOutcome, type PassTrigger } from './reconcile.js';
import { ReadinessRunner } from './readiness-runner.js';
import { buildStatus, metricsInputs } from './snapshot.js';
import type { DaemonState, StatusReport } from './status.js';
import { sleep, systemTimers, type TimerHandle, type Timers } from './timers.js';

export interface DaemonOptions {
  store: StateStore;
  providers: ProviderRegistry;
  /** Reads the fleets directory (`() => loadFleets(dir)`). */
  loadConfig: () => Promise<LoadResult>;
  /** @default systemClock */
  clock?: Clock;
  /** @default systemTimers */
  timers?: Timers;
  /** @default silentLogger */
  logger?: Logger;
  /** Runs instance_ready_command. @default localReadinessProbe */
  probe?: ReadinessProbe;
  /** Observe interval when nothing is in motion. @default 60_000 */
  intervalMs?: number;
  /** Observe interval while instances are creating, being probed or deleting. @default 2_000 */
  expectingIntervalMs?: number;
  /** How long a job waits for a slot (GitLab's instance_acquire_timeout). @default 900_000 */
  acquireTimeoutMs?: number;
  /** How long a new instance may take to pass its heartbeat and ready command. @default 600_000 */
  readyTimeoutMs?: number;
  /** How long `stop` waits for running jobs. @default 600_000 */
  shutdownGraceMs?: number;
  /** Pauses after readiness failures. @default base 10 s, max 10 min */
  backoff?: BackoffOptions;
  /** A demand-triggered pass reuses a provider observation younger than this. @default 5_000 */
  observeMaxAgeMs?: number;
  /** Who the state lock names. @default `user@host pid N` */
  lockHolder?: string;
  /** Whether the holder of a `watch` lock still runs. @default checks the pid on this host */
  isLockHolderAlive?: (lock: LockInfo) => boolean;
  /** `system_id` label of GitLab-compatible metrics. @default derived from the host name */
  systemId?: string;
  /** Shares a scheduler with the job runtime; one is created when absent. */
  slots?: SlotScheduler;
  /**
   * Told the fleet definitions in force after every pass (the job runtime starts, updates and
   * stops its GitLab runners from them). Must not throw.
   */
  onFleets?: (fleets: Fleet[]) => unknown;
}

const DEFAULTS = {
  intervalMs: 60_000,
  expectingIntervalMs: 2_000,
  acquireTimeoutMs: 900_000,
  readyTimeoutMs: 600_000,
  shutdownGraceMs: 600_000,
  observeMaxAgeMs: 5_000,
};

const NEXT_STATES: Record<DaemonState, DaemonState[]> = {
  starting: ['running', 'failed'],
  running: ['draining', 'failed'],
  draining: ['stopped', 'failed'],
  stopped: [],
  failed: [],
};

export class Daemon {
  readonly slots: SlotScheduler;
  readonly metrics: DaemonMetrics;
  readonly startedAt: Date;
  private currentState: DaemonState = 'starting';
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly logger: Logger;
  private readonly ledger: LedgerWriter;
  private readonly config = new FleetConfig();
  private readonly backoff: ReadinessBackoff;
  private readonly reconciler: Reconciler;
  private readonly readiness: ReadinessRunner;
  private readonly settings: typeof DEFAULTS;
  private lock: LockInfo | undefined;
  private started = false;
  private queued: PassTrigger | undefined;
  private loop: Promise<void> | undefined;
  private tick: TimerHandle | undefined;
  private unsubscribe: (() => void) | undefined;
  private idleWaiters: (() => void)[] = [];
  private view: ConfigView = { fleets: [], desired: [], capacityOnly: new Set(), errors: [] };
  private last: PassOutcome | undefined;
  private lastPassAt: Date | undefined;

  constructor(private readonly opts: DaemonOptions) {
    this.clock = opts.clock ?? systemClock;
    this.timers = opts.timers ?? systemTimers;
    this.logger = opts.logger ?? silentLogger;
    this.settings = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
      const v = opts[key];
      if (v !== undefined) this.settings[key] = v;
    }
    this.startedAt = this.clock.now();
    this.ledger = new LedgerWriter(opts.store);
    this.metrics = new DaemonMetrics(opts.systemId ?? `s_${hashOf(hostname()).slice(0, 12)}`);
    this.slots =
      opts.slots ??
      new SlotScheduler({ ledger: this.ledger, clock: this.clock, timers: this.timers, logger: this.logger });
    this.backoff = new ReadinessBackoff(opts.backoff);
    this.reconciler = new Reconciler({
      store: opts.store,
      ledger: this.ledger,
      providers: opts.providers,
      slots: this.slots,
      clock: this.clock,
      logger: this.logger,
      metrics: this.metrics,
      backoff: this.backoff,
      observeMaxAgeMs: this.settings.observeMaxAgeMs,
    });
    this.readiness = new ReadinessRunner({
      ...this.syncDeps(),
      timers: this.timers,
      probe: opts.probe ?? localReadinessProbe,
      backoff: this.backoff,
      metrics: this.metrics,
      readyTimeoutMs: this.settings.readyTimeoutMs,
      onDone: () => this.requestPass('readiness'),
    });
    this.logger.info('daemon state changed', { event: 'state', state: 'starting' });
  }

  get state(): DaemonState {
    return this.currentState;
  }

  /**
   * Takes the lock, loads the fleets, resolves what a previous run left in flight, adopts the
   * instances it finds, and runs the first pass. Throws (and moves to `failed`) when any of that
   * fails; a LOCKED error names the holder.
   */
  async start(): Promise<void> {
    if (this.started || this.currentState !== 'starting') {
      throw new FleetError(ErrorCode.INTERNAL, `cannot start a daemon that is ${this.currentState}`);
    }
    this.started = true;
    try {
      this.lock = await this.takeLock();
      await this.loadConfig();
      this.view = this.config.view(await this.opts.store.listFleets());
      const specs = this.specs();
      const restart = await resolveAfterRestart(specs, this.syncDeps());
      if (restart.intents > 0 || restart.retried.length > 0 || restart.drained.length > 0) {
        this.logger.info('resolved state left by a previous run', { event: 'restart', ...restart });
      }
      this.unsubscribe = this.slots.subscribe(() => this.requestPass('demand'));
      this.transition('running');
      this.requestPass('start');
      await this.idle();
    } catch (e) {
      this.transition('failed', asError(e).message);
      await this.releaseLock();
      throw e;
    }
  }

  /**
   * Graceful stop: no new jobs, running ones get up to `graceMs`, fleets with
   * `delete_instances_on_shutdown` lose their idle instances, then the lock is released.
   */
  async stop(opts: { graceMs?: number } = {}): Promise<void> {
    if (this.currentState !== 'running') {
      throw new FleetError(ErrorCode.INTERNAL, `cannot stop a daemon that is ${this.currentState}`);
    }
    this.transition('draining');
    this.slots.stopAccepting();
    const graceMs = opts.graceMs ?? this.settings.shutdownGraceMs;
    const running = this.slots.activeAcquisitions();
    if (running > 0) {
      this.logger.info('waiting for running jobs', { event: 'shutdown', jobs: running, grace_ms: graceMs });
      const grace = new AbortController();
      const done = await Promise.race([
        this.slots.whenNoAcquisitions().then(() => true),
        sleep(this.timers, graceMs, grace.signal).then(
          () => false,
          () => true,
        ),
      ]);
      grace.abort();
      if (!done) {
        this.logger.warn('grace period over; jobs still running are abandoned', {
          event: 'shutdown',
          jobs: this.slots.activeAcquisitions(),
        });
      }
    }
    this.tick?.cancel();
    this.unsubscribe?.();
    this.queued = undefined;
    await this.loop;
    this.readiness.abortAll();
    await this.readiness.settled();
    await this.deleteOnShutdown();
    await this.ledger.flush();
    await this.releaseLock();
    this.transition('stopped');
  }

  /** Re-reads the fleets directory (the file watcher calls this) and plans at once. */
  async reloadConfig(): Promise<void> {
    if (this.currentState !== 'running') return;
    await this.loadConfig();
    this.requestPass('config');
  }

  /** Lets a manual fleet's file definition be applied once (a reviewed change). */
  approve(fleet: string): void {
    const view = this.view.fleets.find((f) => f.name === fleet);
    if (!view?.file) {
      throw new FleetError(ErrorCode.USAGE, `no fleet file defines ${fleet}`, {
        hint: 'see runfleet status',
      });
    }
    this.config.approve(fleet);
    this.logger.info('manual fleet change approved', { event: 'approve', fleet });
    this.requestPass('config');
  }

  /** Resolves when no pass is queued or running and no readiness probe is in flight. */
  async idle(): Promise<void> {
    for (;;) {
      if (this.loop) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      else if (this.readiness.busy()) await this.readiness.settled();
      else return;
    }
  }

  async status(): Promise<StatusReport> {
    const ledger = await this.opts.store.listInstances();
    return buildStatus({
      view: this.view,
      ledger,
      last: this.last,
      slots: this.slots,
      backoff: this.backoff,
      config: this.config,
      now: this.clock.now(),
      daemon: {
        state: this.currentState,
        pid: process.pid,
        started_at: this.startedAt.toISOString(),
        ...(this.lastPassAt ? { last_pass_at: this.lastPassAt.toISOString() } : {}),
      },
    });
  }

  async metricsText(): Promise<string> {
    this.metrics.refresh(metricsInputs(this.view, this.last, this.slots), this.currentState);
    return this.metrics.text();
  }

  // ---- passes ----

  private requestPass(trigger: PassTrigger): void {
    if (this.currentState !== 'running' && this.currentState !== 'draining') return;
    // Anything but demand needs fresh provider data; demand alone may use the observe cache.
    this.queued = this.queued === undefined || this.queued === 'demand' ? trigger : this.queued;
    this.loop ??= this.runLoop();
  }

  private async runLoop(): Promise<void> {
    try {
      while (this.queued !== undefined) {
        const trigger = this.queued;
        this.queued = undefined;
        await this.runPass(trigger);
      }
    } finally {
      this.loop = undefined;
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private async runPass(trigger: PassTrigger): Promise<void> {
    const started = performance.now();
    let expecting = true;
    let retryAt: number | undefined;
    try {
      this.view = this.config.view(await this.opts.store.listFleets());
      this.configureSlots();
      if (this.currentState === 'running') void this.opts.onFleets?.([...this.specs().values()]);
      const outcome = await this.reconciler.pass(this.view, trigger, this.currentState === 'draining');
      this.last = outcome;
      this.lastPassAt = this.clock.now();
      expecting = outcome.expecting;
      retryAt = outcome.retryAt;
      this.logger.debug('pass done', { event: 'pass', trigger, expecting, probes: outcome.toProbe.length });
      for (const step of outcome.applied?.steps ?? []) {
        if (step.step === 'configure' && step.status === 'done') this.config.consumeApproval(step.fleet);
      }
      const specs = this.specs();
      for (const p of outcome.toProbe) {
        const spec = specs.get(p.fleet);
        if (spec && this.currentState === 'running') this.readiness.start(spec, p.id, p.created_at);
      }
    } catch (e) {
      this.logger.error('reconcile pass failed', {
        event: 'pass',
        trigger,
        error: asError(e).message,
        ...(isFleetError(e) && e.hint ? { hint: e.hint } : {}),
      });
      for (const f of this.view.fleets) this.metrics.missedUpdate(f.name);
    } finally {
      this.metrics.reconciled(trigger, (performance.now() - started) / 1000);
    }
    this.scheduleTick(expecting, retryAt);
  }

  private scheduleTick(expecting: boolean, retryAt: number | undefined): void {
    if (this.currentState !== 'running') return;
    this.tick?.cancel();
    let delay =
      expecting || this.readiness.busy() ? this.settings.expectingIntervalMs : this.settings.intervalMs;
    if (retryAt !== undefined) delay = Math.min(delay, Math.max(0, retryAt - this.clock.now().getTime()));
    this.tick = this.timers.after(delay, () => this.requestPass(retryAt !== undefined ? 'retry' : 'tick'));
  }

  private configureSlots(): void {
    for (const d of this.view.desired) {
      this.slots.configureFleet(d.spec.name, {
        capacityPerInstance: d.spec.capacity_per_instance,
        maxUseCount: d.spec.max_use_count,
        maxInstances: d.spec.max_instances,
        acquireTimeoutMs: this.settings.acquireTimeoutMs,
      });
    }
  }

  // ---- config ----

  private async loadConfig(): Promise<void> {
    let result: LoadResult;
    try {
      result = await this.opts.loadConfig();
    } catch (e) {
      // The directory itself is unreadable: keep everything as it is.
      this.logger.error('cannot read fleet files; keeping the current definitions', {
        error: asError(e).message,
      });
      return;
    }
    const before = new Set(this.config.errors().map(formatIssue));
    this.config.update(result);
    const errors = this.config.errors();
    for (const issue of errors) {
      const text = formatIssue(issue);
      if (before.has(text)) continue;
      this.logger.error('invalid fleet file: its fleets keep their last good definition', {
        event: 'config_error',
        file: issue.file,
        line: issue.line,
        col: issue.col,
        field: issue.pointer,
        error: issue.message,
      });
    }
    const byFile = new Map<string, number>();
    for (const f of result.files) byFile.set(f.file, f.errors.length);
    this.metrics.setConfigErrors(byFile);
    this.logger.info('fleet files loaded', {
      event: 'config',
      files: result.files.length,
      fleets: result.fleets.length,
      errors: errors.length,
    });
  }

  private specs(): Map<string, Fleet> {
    const m = new Map<string, Fleet>();
    for (const d of this.view.desired) m.set(d.spec.name, d.spec);
    return m;
  }

  private syncDeps(): SyncDeps {
    return {
      store: this.opts.store,
      ledger: this.ledger,
      providers: this.opts.providers,
      slots: this.slots,
      clock: this.clock,
      logger: this.logger,
    };
  }

  private async deleteOnShutdown(): Promise<void> {
    for (const d of this.view.desired) {
      if (!d.spec.delete_instances_on_shutdown) continue;
      const rows = await this.opts.store.listInstances(d.spec.name);
      const idle = this.slots.claimForRemoval(
        d.spec.name,
        rows.map((r) => r.id),
        'scale_in',
      );
      const busy = rows.length - idle.length;
      this.logger.info('delete_instances_on_shutdown', {
        event: 'shutdown',
        fleet: d.spec.name,
        idle: idle.length,
        busy,
      });
      if (idle.length > 0) await retryRemoval(d.spec, idle, this.syncDeps());
    }
  }

  // ---- state and lock ----

  private transition(next: DaemonState, reason?: string): void {
    if (!NEXT_STATES[this.currentState].includes(next)) {
      throw new FleetError(ErrorCode.INTERNAL, `daemon cannot go from ${this.currentState} to ${next}`);
    }
    const from = this.currentState;
    this.currentState = next;
    const fields = { event: 'state', from, state: next, ...(reason ? { reason } : {}) };
    if (next === 'failed') this.logger.error('daemon state changed', fields);
    else this.logger.info('daemon state changed', fields);
  }

  private async takeLock(): Promise<LockInfo> {
    const who = this.opts.lockHolder ?? describeLockHolder();
    try {
      return await this.opts.store.acquireLock('watch', who);
    } catch (e) {
      if (!isFleetError(e) || e.code !== ErrorCode.LOCKED) throw e;
      const held = await this.opts.store.currentLock();
      const alive = this.opts.isLockHolderAlive ?? lockHolderAlive;
      if (!held || held.operation !== 'watch' || alive(held)) throw e;
      this.logger.warn('taking over the lock of a watch process that is gone', {
        event: 'lock',
        previous: held.who,
        since: held.created_at,
      });
      await this.opts.store.forceUnlock(held.id);
      return this.opts.store.acquireLock('watch', who);
    }
  }

  private async releaseLock(): Promise<void> {
    if (!this.lock) return;
    const id = this.lock.id;
    this.lock = undefined;
    await this.opts.store.releaseLock(id).catch((e: unknown) => {
      this.logger.error('cannot release the state lock', { error: asError(e).message, lock: id });
    });
  }
}

/** `user@host pid N` on this host: alive unless the pid is gone. Other hosts: assumed alive. */
export function lockHolderAlive(lock: LockInfo): boolean {
  const m = /@([^ ]+) pid (\d+)$/.exec(lock.who);
  if (!m || m[1] !== hostname()) return true;
  try {
    process.kill(Number(m[2]), 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
