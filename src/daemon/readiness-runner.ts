/**
 * Runs readiness checks of new instances, one at a time per instance: heartbeat, then the fleet's
 * `instance_ready_command` (if any) over a connection, through the injected probe. Success makes the instance `ready` in the
 * ledger and hands its slots to the scheduler. Failure drains it as unhealthy (the planner removes
 * it) and starts the fleet's backoff, so a broken image does not become a create/delete loop.
 *
 * Each instance fails at most once: a pass that observed it `creating` just before its check
 * failed asks for another check, which finds the row no longer `creating` and does nothing, and
 * the failure itself is only counted when it is what moved the row out of `creating`.
 */
import { asError } from '../errors.js';
import type { Fleet } from '../model/fleet.js';
import { groupRefFor } from '../model/group.js';
import type { SyncDeps } from './instance-sync.js';
import type { DaemonMetrics } from './metrics.js';
import type { ReadinessProbe } from '../runtime/readiness-probe.js';
import type { ReadinessBackoff } from './readiness-backoff.js';
import type { Time } from '../util/time.js';

export interface ReadinessRunnerDeps extends SyncDeps {
  time: Time;
  probe: ReadinessProbe;
  backoff: ReadinessBackoff;
  metrics: DaemonMetrics;
  readyTimeoutMs: number;
  /** Called after each check, whatever its result. */
  onDone: () => void;
}

export class ReadinessRunner {
  private readonly running = new Map<string, { promise: Promise<void>; abort: AbortController }>();

  constructor(private readonly deps: ReadinessRunnerDeps) {}

  busy(): boolean {
    return this.running.size > 0;
  }

  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running.values()].map((r) => r.promise));
  }

  abortAll(): void {
    for (const r of this.running.values()) r.abort.abort(new Error('runfleet is shutting down'));
  }

  /**
   * Instances whose time-to-running was recorded (fleeting_provisioner_instance_is_running_time_seconds),
   * kept until the instance leaves `creating`: a check that found it not up yet probes it again.
   */
  private readonly seenRunning = new Set<string>();

  /** Starts a check unless one runs for this instance already. */
  start(spec: Fleet, id: string, createdAt: string): void {
    const key = `${spec.name}\u0000${id}`;
    if (this.running.has(key)) return;
    const abort = new AbortController();
    const promise = this.check(spec, id, createdAt, abort.signal)
      .catch((e: unknown) =>
        this.deps.logger.error('readiness check crashed', { fleet: spec.name, error: String(e) }),
      )
      .finally(() => {
        this.running.delete(key);
        this.deps.onDone();
      });
    this.running.set(key, { promise, abort });
  }

  private async check(spec: Fleet, id: string, createdAt: string, signal: AbortSignal): Promise<void> {
    const { deps } = this;
    const ref = groupRefFor(spec);
    const provider = deps.providers.forFleet(spec);
    const log = deps.logger.child({ fleet: spec.name, instance: id });
    const ageMs = deps.time.now().getTime() - Date.parse(createdAt);
    const timeout = new AbortController();
    const timer = deps.time.after(Math.max(1, deps.readyTimeoutMs - ageMs), () =>
      timeout.abort(new Error(`not ready within ${deps.readyTimeoutMs} ms`)),
    );
    const both = AbortSignal.any([signal, timeout.signal]);
    try {
      // Asked for by a pass that read the ledger before an earlier check decided: nothing to do.
      const key = `${spec.name}\u0000${id}`;
      if ((await deps.store.getInstance(spec.name, id))?.state !== 'creating') {
        this.seenRunning.delete(key);
        return;
      }
      // The first probe of an instance is the moment the provider first showed it running.
      if (!this.seenRunning.has(key)) {
        this.seenRunning.add(key);
        deps.metrics.running(spec.name, ageMs / 1000);
      }
      if (!(await provider.heartbeat(ref, id, both))) {
        // Not up yet: check again on a later pass, until the ready timeout.
        if (ageMs >= deps.readyTimeoutMs)
          await this.fail(spec, id, 'heartbeat failed until the ready timeout');
        return;
      }
      // Without instance_ready_command the provider's heartbeat is the whole check: no connection
      // is made (the README says so; `instance_ready_command: "true"` asks for one).
      if (spec.instance_ready_command) {
        const info = await provider.connectInfo(ref, id, both);
        const result = await deps.probe(spec, id, info, both);
        if (!result.ok) {
          const output = result.output ? `: ${result.output.trim()}` : '';
          await this.fail(spec, id, `instance_ready_command failed${output}`);
          return;
        }
      }
      const row = await deps.store.getInstance(spec.name, id);
      if (!row || row.state !== 'creating') return;
      const now = deps.time.now();
      await deps.ledger.update(spec.name, id, (r) =>
        r.state === 'creating' ? { ...r, state: 'ready', ready_at: now.toISOString() } : undefined,
      );
      deps.slots.addReadyInstance(spec.name, id, row.use_count);
      deps.backoff.succeeded(spec.name);
      deps.metrics.ready(spec.name, (now.getTime() - Date.parse(row.created_at)) / 1000);
      log.info('instance ready', { event: 'ready' });
    } catch (e) {
      if (signal.aborted) return; // shutdown: not the instance's fault
      await this.fail(spec, id, asError(e).message);
    } finally {
      timer.cancel();
    }
  }

  private async fail(spec: Fleet, id: string, why: string): Promise<void> {
    const { deps } = this;
    let createdAt: string | undefined;
    await deps.ledger.update(spec.name, id, (r) => {
      if (r.state !== 'creating') return undefined; // decided already (or being removed)
      createdAt = r.created_at;
      return { ...r, state: 'draining', drain_reason: 'unhealthy', health_failures: r.health_failures + 1 };
    });
    if (createdAt === undefined) return;
    deps.slots.markUnavailable(spec.name, id, 'unhealthy');
    const pauseMs = deps.backoff.failed(spec.name, deps.time.now().getTime(), Date.parse(createdAt));
    deps.metrics.readinessFailed(spec.name);
    deps.logger.warn('instance failed its readiness check; removing it and pausing creation', {
      event: 'not_ready',
      fleet: spec.name,
      instance: id,
      error: why.slice(0, 500),
      backoff_ms: pauseMs,
    });
  }
}
