/**
 * When the daemon's reconcile passes run. Passes (observe → plan → apply, see `reconcile.ts`) run
 * one at a time; whatever asks for one while a pass runs (demand events, config reloads, ticks,
 * finished readiness checks) is folded into one follow-up pass. After each pass the tick is
 * re-armed: every `expectingIntervalMs` while instances are in motion or being probed, else every
 * `intervalMs`, sooner when a held-back increase may go ahead (`retryAt`). `afterPass` hears of
 * every completed pass (the health checks run right after passes that observed the providers).
 *
 * Also holds what the last pass saw (the config view, its outcome), which status and metrics read.
 */
import { asError, isFleetError } from '../errors.js';
import type { Fleet } from '../model/fleet.js';
import type { SlotScheduler } from '../runtime/slots/scheduler.js';
import type { StateStore } from '../store/store.js';
import type { Time, TimerHandle } from '../util/time.js';
import type { DaemonSettings } from './daemon-options.js';
import { specsByName, type ConfigView, type FleetConfig } from './fleet-config.js';
import type { Logger } from '../util/logger.js';
import type { DaemonMetrics } from './metrics.js';
import type { ReadinessRunner } from './readiness-runner.js';
import type { PassOutcome, PassTrigger, Reconciler } from './reconcile.js';
import type { DaemonState } from './status.js';

export interface PassLoopDeps {
  store: StateStore;
  config: FleetConfig;
  reconciler: Reconciler;
  readiness: ReadinessRunner;
  slots: SlotScheduler;
  metrics: DaemonMetrics;
  time: Time;
  logger: Logger;
  settings: Pick<DaemonSettings, 'intervalMs' | 'expectingIntervalMs' | 'acquireTimeoutMs'>;
  /** The daemon's state: passes run while running or draining; only `running` ticks and probes. */
  state: () => DaemonState;
  onFleets?: ((fleets: Fleet[]) => unknown) | undefined;
  /** Told of a pass that failed, once per fleet it held up. */
  onProviderError?: ((fleet: string, during: string, error: unknown) => void) | undefined;
  /** Told after each pass that completed, with its trigger (the health checks follow passes). */
  afterPass?: ((trigger: PassTrigger) => void) | undefined;
  /** The fleets this daemon plans (several managers: owned and taken over). @default every fleet */
  owns?: ((fleet: string) => boolean) | undefined;
}

export class PassLoop {
  private currentView: ConfigView = { fleets: [], desired: [], capacityOnly: new Set(), errors: [] };
  private lastOutcome: PassOutcome | undefined;
  private lastAt: Date | undefined;
  private queued: PassTrigger | undefined;
  private loop: Promise<void> | undefined;
  private tick: TimerHandle | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly deps: PassLoopDeps) {}

  /** The fleets as of the last pass (or `refreshView`). */
  get view(): ConfigView {
    return this.currentView;
  }

  /** The outcome of the last pass that completed. */
  get last(): PassOutcome | undefined {
    return this.lastOutcome;
  }

  get lastPassAt(): Date | undefined {
    return this.lastAt;
  }

  /** Rebuilds the view from the loaded fleet files and the applied fleets in the store. */
  async refreshView(): Promise<void> {
    const applied = await this.deps.store.listFleets();
    this.currentView = this.deps.config.view(applied, this.deps.owns);
  }

  /** The definitions in force, by fleet name. */
  specs(): Map<string, Fleet> {
    return specsByName(this.currentView);
  }

  /** Starts a pass, or folds `trigger` into the one queued behind the running pass. */
  request(trigger: PassTrigger): void {
    const state = this.deps.state();
    if (state !== 'running' && state !== 'draining') return;
    // Anything but demand needs fresh provider data; demand alone may use the observe cache.
    this.queued = this.queued === undefined || this.queued === 'demand' ? trigger : this.queued;
    this.loop ??= this.runLoop();
  }

  /** Resolves when no pass is queued or running and no readiness probe is in flight. */
  async idle(): Promise<void> {
    for (;;) {
      if (this.loop) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      else if (this.deps.readiness.busy()) await this.deps.readiness.settled();
      else return;
    }
  }

  /** No more ticks, the queued pass is dropped; resolves once the running pass is done. */
  halt(): Promise<void> {
    this.tick?.cancel();
    this.queued = undefined;
    return this.loop ?? Promise.resolve();
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
    const { deps } = this;
    const started = performance.now();
    let expecting = true;
    let retryAt: number | undefined;
    try {
      await this.refreshView();
      this.configureSlots();
      if (deps.state() === 'running') void deps.onFleets?.([...this.specs().values()]);
      const outcome = await deps.reconciler.pass(this.currentView, trigger, deps.state() === 'draining');
      this.lastOutcome = outcome;
      this.lastAt = deps.time.now();
      expecting = outcome.expecting;
      retryAt = outcome.retryAt;
      deps.logger.debug('pass done', { event: 'pass', trigger, expecting, probes: outcome.toProbe.length });
      for (const step of outcome.applied?.steps ?? []) {
        if (step.step === 'configure' && step.status === 'done') deps.config.consumeApproval(step.fleet);
      }
      const specs = this.specs();
      for (const p of outcome.toProbe) {
        const spec = specs.get(p.fleet);
        if (spec && deps.state() === 'running') deps.readiness.start(spec, p.id, p.created_at);
      }
      deps.afterPass?.(trigger);
    } catch (e) {
      deps.logger.error('reconcile pass failed', {
        event: 'pass',
        trigger,
        error: asError(e).message,
        ...(isFleetError(e) && e.hint ? { hint: e.hint } : {}),
      });
      for (const f of this.currentView.fleets) {
        deps.metrics.missedUpdate(f.name);
        deps.onProviderError?.(f.name, 'pass', e);
      }
    } finally {
      deps.metrics.reconciled(trigger, (performance.now() - started) / 1000);
    }
    this.scheduleTick(expecting, retryAt);
  }

  private scheduleTick(expecting: boolean, retryAt: number | undefined): void {
    const { deps } = this;
    if (deps.state() !== 'running') return;
    this.tick?.cancel();
    let delay =
      expecting || deps.readiness.busy() ? deps.settings.expectingIntervalMs : deps.settings.intervalMs;
    if (retryAt !== undefined) delay = Math.min(delay, Math.max(0, retryAt - deps.time.now().getTime()));
    this.tick = deps.time.after(delay, () => this.request(retryAt !== undefined ? 'retry' : 'tick'));
  }

  private configureSlots(): void {
    for (const d of this.currentView.desired) {
      this.deps.slots.configureFleet(d.spec.name, {
        capacityPerInstance: d.spec.capacity_per_instance,
        maxUseCount: d.spec.max_use_count,
        maxInstances: d.spec.max_instances,
        acquireTimeoutMs: this.deps.settings.acquireTimeoutMs,
      });
    }
  }
}
