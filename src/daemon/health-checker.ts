/**
 * Periodic health checks of idle ready instances: GitLab taskscaler's heartbeat with its
 * `failure_threshold`. Readiness proves an instance alive once; this keeps proving it while it
 * waits for jobs, so one that died while idle is replaced before a job lands on it.
 *
 * Contract:
 * - Only instances the slot scheduler has in service (ready, not draining) and holding no job are
 *   heartbeated (`provider.heartbeat`). A busy instance is proven alive by its job; its time
 *   restarts when the job ends. A new instance is first checked one interval after it joined.
 * - Each instance at most once per `intervalMs`, at most `HEARTBEAT_CONCURRENCY` calls at a time,
 *   each bounded by `HEARTBEAT_TIMEOUT_MS` (a timeout is a failure).
 * - Checks run right after a reconcile pass that observed the providers (so AWS answers from its
 *   fresh observe cache instead of one API call per instance), and from a fallback timer when no
 *   such pass came for 1.5 intervals.
 * - `false` (or a timeout) adds one to the ledger's `health_failures`; `true` resets it to 0. Both
 *   go through the LedgerWriter, serialised per instance. A heartbeat that threw for another reason
 *   (the provider could not tell, e.g. an API outage) counts neither way: an outage must not
 *   condemn a whole fleet.
 * - At `UNHEALTHY_AFTER_FAILURES` consecutive failures the instance takes no new job
 *   (`markUnavailable 'unhealthy'`), is logged and counted, and `onUnhealthy` asks for a pass: the
 *   planner removes it (reason `unhealthy`) and replaces it. A job that took the instance while the
 *   failure was being written finishes first (busy instances are never removed).
 */
import { asError } from '../errors.js';
import type { Fleet } from '../model/fleet.js';
import { groupRefFor } from '../model/group.js';
import { UNHEALTHY_AFTER_FAILURES } from '../plan/index.js';
import type { SyncDeps } from './instance-sync.js';
import type { DaemonMetrics } from './metrics.js';
import type { TimerHandle, Time } from '../util/time.js';
import { rejectOnAbort } from '../util/abort.js';

/** Heartbeats in flight at once, across fleets: a sweep never bursts a provider. */
export const HEARTBEAT_CONCURRENCY = 4;
/** A heartbeat not answered within this counts as failed. */
export const HEARTBEAT_TIMEOUT_MS = 30_000;

export interface HealthCheckerDeps extends Omit<SyncDeps, 'onGone'> {
  time: Time;
  metrics: DaemonMetrics;
  /** The shortest time between two heartbeats of one instance. */
  intervalMs: number;
  /** The fleet definitions in force, by name (an instance of any other fleet is not checked). */
  specs: () => ReadonlyMap<string, Fleet>;
  /** Heartbeats start only while this holds (the daemon is `running`). */
  active: () => boolean;
  /** An instance reached the threshold: the daemon runs a pass to remove and replace it. */
  onUnhealthy: () => void;
}

interface Due {
  spec: Fleet;
  id: string;
}

export class HealthChecker {
  /** Instance key → epoch ms its current interval started (last check, job, or first sight). */
  private readonly since = new Map<string, number>();
  private readonly shutdown = new AbortController();
  private sweeping: Promise<void> | undefined;
  private fallback: TimerHandle | undefined;
  private stopped = false;

  constructor(private readonly deps: HealthCheckerDeps) {}

  /** Arms the fallback timer; sweeps otherwise follow the passes (`sweep`). */
  start(): void {
    this.arm();
  }

  /** Heartbeats the instances that are due, unless a sweep still runs. Never throws. */
  sweep(): void {
    if (this.stopped) return;
    this.arm();
    if (this.sweeping || !this.deps.active()) return;
    const due = this.dueInstances(this.deps.time.now().getTime());
    if (due.length === 0) return;
    this.sweeping = this.checkAll(due).finally(() => (this.sweeping = undefined));
  }

  busy(): boolean {
    return this.sweeping !== undefined;
  }

  /** Resolves when no heartbeat is in flight. */
  async settled(): Promise<void> {
    while (this.sweeping) await this.sweeping;
  }

  /** No more sweeps; heartbeats in flight are abandoned (not counted). Resolves once they are. */
  stop(): Promise<void> {
    this.stopped = true;
    this.fallback?.cancel();
    this.shutdown.abort(new Error('runfleet is shutting down'));
    return this.settled();
  }

  private arm(): void {
    this.fallback?.cancel();
    this.fallback = this.deps.time.after(Math.ceil(this.deps.intervalMs * 1.5), () => this.sweep());
  }

  /** Idle in-service instances whose interval is over; restarts the time of busy and new ones. */
  private dueInstances(nowMs: number): Due[] {
    const { deps } = this;
    const due: Due[] = [];
    const inService = new Set<string>();
    for (const [fleet, spec] of deps.specs()) {
      for (const inst of deps.slots.instances(fleet)) {
        if (!inst.available) continue; // draining: on its way out already
        const key = `${fleet}\u0000${inst.id}`;
        inService.add(key);
        const since = this.since.get(key);
        if (since === undefined || inst.acquired > 0) this.since.set(key, nowMs);
        else if (nowMs - since >= deps.intervalMs) {
          // The sweep's start, not the call's: the next pass-driven sweep finds it due again.
          this.since.set(key, nowMs);
          due.push({ spec, id: inst.id });
        }
      }
    }
    for (const key of this.since.keys()) if (!inService.has(key)) this.since.delete(key);
    return due;
  }

  private async checkAll(due: Due[]): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < due.length && !this.shutdown.signal.aborted) {
        const d = due[next++] as Due;
        await this.check(d.spec, d.id).catch((e: unknown) =>
          this.deps.logger.error('health check crashed', { fleet: d.spec.name, error: String(e) }),
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(HEARTBEAT_CONCURRENCY, due.length) }, worker));
  }

  private async check(spec: Fleet, id: string): Promise<void> {
    const { deps } = this;
    // A job may have taken it since the sweep began: the job proves it alive.
    if (deps.slots.isBusy(spec.name, id) || !deps.active()) return;
    const log = deps.logger.child({ fleet: spec.name, instance: id });
    const timeout = new AbortController();
    const timer = deps.time.after(HEARTBEAT_TIMEOUT_MS, () =>
      timeout.abort(new Error(`no heartbeat answer within ${HEARTBEAT_TIMEOUT_MS} ms`)),
    );
    const signal = AbortSignal.any([this.shutdown.signal, timeout.signal]);
    let alive: boolean;
    try {
      const provider = deps.providers.forFleet(spec);
      // Raced with the signal: a provider that ignores it must not wedge the sweep or shutdown.
      alive = await Promise.race([provider.heartbeat(groupRefFor(spec), id, signal), rejectOnAbort(signal)]);
    } catch (e) {
      if (this.shutdown.signal.aborted) return;
      if (!timeout.signal.aborted) {
        deps.onProviderError?.(spec.name, 'heartbeat', e);
        log.warn('heartbeat could not be sent; not counted', {
          event: 'heartbeat',
          error: asError(e).message,
        });
        return;
      }
      alive = false;
    } finally {
      timer.cancel();
    }
    if (this.shutdown.signal.aborted) return;
    if (alive) await this.succeeded(spec.name, id);
    else await this.failed(spec.name, id);
  }

  private async succeeded(fleet: string, id: string): Promise<void> {
    let before = 0;
    await this.deps.ledger.update(fleet, id, (r) => {
      before = r.health_failures;
      return r.health_failures > 0 && isInService(r.state) ? { ...r, health_failures: 0 } : undefined;
    });
    if (before > 0) {
      this.deps.logger.info('heartbeat answered again', { event: 'heartbeat', fleet, instance: id, before });
    }
  }

  private async failed(fleet: string, id: string): Promise<void> {
    const { deps } = this;
    if (deps.slots.isBusy(fleet, id)) return; // the job that took it meanwhile will tell
    deps.metrics.heartbeatFailed(fleet);
    let failures = 0;
    await deps.ledger.update(fleet, id, (r) => {
      if (!isInService(r.state)) return undefined;
      failures = r.health_failures + 1;
      return { ...r, health_failures: failures };
    });
    if (failures === 0) return; // removed or draining meanwhile
    const fields = { event: 'heartbeat', fleet, instance: id, failures, threshold: UNHEALTHY_AFTER_FAILURES };
    if (failures < UNHEALTHY_AFTER_FAILURES) {
      deps.logger.warn('heartbeat failed', fields);
      return;
    }
    deps.slots.markUnavailable(fleet, id, 'unhealthy');
    deps.metrics.heartbeatUnhealthy(fleet);
    deps.logger.warn('instance failed its heartbeats; replacing it', { ...fields, event: 'unhealthy' });
    deps.onUnhealthy();
  }
}

function isInService(state: string): boolean {
  return state === 'ready' || state === 'in_use';
}
