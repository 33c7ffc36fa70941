/**
 * Returning fixed hosts to service. An instance of an elastic group that fails is removed and
 * replaced; a static host cannot be replaced, so removing it would leave the fleet smaller for
 * good. Instead, a host of a fixed-capacity group that is out of service as unhealthy (failed its
 * heartbeats, failed its readiness check, its connection broke under a job, or it held a job of a
 * process that died) is put on trial at the heartbeat rhythm: the provider's heartbeat, then a
 * command over a connection (the readiness probe: `instance_ready_command`, else `true`). When
 * both pass, the host is `ready` again with its failures reset and takes jobs at once. Meanwhile
 * `why` says what keeps it out, for `runfleet status`.
 *
 * Trials run after passes that observed the providers, at most one per host per `intervalMs`, one
 * at a time, each bounded by HEARTBEAT_TIMEOUT_MS; a busy host is never touched.
 */
import { asError } from '../errors.js';
import type { Fleet } from '../model/fleet.js';
import { groupRefFor } from '../model/group.js';
import type { LedgerInstance, ObservedGroup } from '../model/observed.js';
import { UNHEALTHY_AFTER_FAILURES } from '../plan/index.js';
import type { ReadinessProbe } from '../runtime/readiness-probe.js';
import { HEARTBEAT_TIMEOUT_MS } from './health-checker.js';
import type { SyncDeps } from './instance-sync.js';

export interface HostRecoveryDeps extends Omit<SyncDeps, 'onGone'> {
  probe: ReadinessProbe;
  /** The shortest time between two trials of one host. */
  intervalMs: number;
  /** Trials start only while this holds (the daemon is `running`). */
  active: () => boolean;
}

/** What keeps a host out of service, as status shows it. */
export interface OutOfService {
  reason: string;
  /** The last trial: when, and why it did not bring the host back. */
  last_try_at?: string;
  last_error?: string;
}

/** Out of service in the ledger because it is (or was) unhealthy: what a trial may undo. */
function unhealthyInLedger(row: LedgerInstance): boolean {
  if (row.acquired > 0) return false;
  if (row.state === 'draining') return row.drain_reason === 'unhealthy';
  return (row.state === 'ready' || row.state === 'in_use') && row.health_failures >= UNHEALTHY_AFTER_FAILURES;
}

export class HostRecovery {
  private readonly lastTry = new Map<string, { at: number; error: string }>();
  private readonly shutdown = new AbortController();
  private sweeping: Promise<void> | undefined;

  constructor(private readonly deps: HostRecoveryDeps) {}

  /** Tries the due hosts of the fixed-capacity groups in `groups`, unless a sweep still runs. */
  sweep(groups: readonly ObservedGroup[], specs: ReadonlyMap<string, Fleet>): void {
    if (this.sweeping || !this.deps.active()) return;
    const fixed = groups.filter((g) => g.fixedCapacity && g.exists && specs.has(g.ref.fleet));
    if (fixed.length === 0) return;
    this.sweeping = this.tryAll(fixed, specs)
      .catch((e: unknown) => this.deps.logger.error('host recovery crashed', { error: String(e) }))
      .finally(() => (this.sweeping = undefined));
  }

  /** Why the host is out of service, or undefined when it is not out as unhealthy. */
  why(row: LedgerInstance): OutOfService | undefined {
    if (!this.isOut(row)) return undefined;
    const reason =
      row.state === 'draining'
        ? 'unhealthy: failed its readiness check, or its connection broke under a job'
        : row.health_failures >= UNHEALTHY_AFTER_FAILURES
          ? `unhealthy: ${row.health_failures} heartbeats failed in a row`
          : 'unhealthy: its provider reports it unreachable';
    const last = this.lastTry.get(`${row.fleet}\u0000${row.id}`);
    return {
      reason,
      ...(last ? { last_try_at: new Date(last.at).toISOString(), last_error: last.error } : {}),
    };
  }

  /**
   * Out as unhealthy: by the ledger (failed heartbeats, readiness, a job's broken connection), or
   * only in the scheduler (the provider's observation said unreachable; nothing was written).
   */
  private isOut(row: LedgerInstance): boolean {
    if (row.acquired > 0 || row.state === 'creating' || row.state === 'deleting') return false;
    if (unhealthyInLedger(row)) return true;
    const slot = this.deps.slots.instances(row.fleet).find((i) => i.id === row.id);
    return slot !== undefined && !slot.available && slot.reason === 'unhealthy' && slot.acquired === 0;
  }

  busy(): boolean {
    return this.sweeping !== undefined;
  }

  async settled(): Promise<void> {
    while (this.sweeping) await this.sweeping;
  }

  /** No more trials; one in flight is abandoned. Resolves once it is. */
  stop(): Promise<void> {
    this.shutdown.abort(new Error('runfleet is shutting down'));
    return this.settled();
  }

  private async tryAll(groups: ObservedGroup[], specs: ReadonlyMap<string, Fleet>): Promise<void> {
    const { deps } = this;
    for (const group of groups) {
      const spec = specs.get(group.ref.fleet) as Fleet;
      const running = new Set(group.instances.filter((i) => i.state === 'running').map((i) => i.id));
      for (const row of await deps.store.listInstances(spec.name)) {
        if (this.shutdown.signal.aborted || !deps.active()) return;
        const key = `${spec.name}\u0000${row.id}`;
        const last = this.lastTry.get(key);
        const nowMs = deps.time.now().getTime();
        if (!this.isOut(row) || !running.has(row.id) || deps.slots.isBusy(spec.name, row.id)) continue;
        if (last && nowMs - last.at < deps.intervalMs) continue;
        const error = await this.trial(spec, row.id);
        if (error === undefined) await this.restore(spec, row.id);
        else if (!this.shutdown.signal.aborted) {
          if (last?.error !== error) {
            deps.logger.warn('host still out of service', {
              event: 'trial',
              fleet: spec.name,
              instance: row.id,
              error,
            });
          }
          this.lastTry.set(key, { at: nowMs, error });
        }
      }
    }
  }

  /** Heartbeat, then a command over a connection. Returns why it failed, or undefined. */
  private async trial(spec: Fleet, id: string): Promise<string | undefined> {
    const { deps } = this;
    const ref = groupRefFor(spec);
    const provider = deps.providers.forFleet(spec);
    const timeout = new AbortController();
    const timer = deps.time.after(HEARTBEAT_TIMEOUT_MS, () =>
      timeout.abort(new Error(`no answer within ${HEARTBEAT_TIMEOUT_MS} ms`)),
    );
    const signal = AbortSignal.any([this.shutdown.signal, timeout.signal]);
    try {
      if (!(await provider.heartbeat(ref, id, signal))) return 'does not answer its heartbeat';
      const result = await deps.probe(spec, id, await provider.connectInfo(ref, id, signal), signal);
      return result.ok ? undefined : `command failed: ${(result.output ?? '').trim().slice(0, 300)}`;
    } catch (e) {
      return asError(e).message.slice(0, 300);
    } finally {
      timer.cancel();
    }
  }

  private async restore(spec: Fleet, id: string): Promise<void> {
    const { deps } = this;
    let restored: LedgerInstance | undefined;
    await deps.ledger.update(spec.name, id, (r) => {
      if (!this.isOut(r) || deps.slots.isBusy(spec.name, id)) return undefined;
      const { drain_reason: _gone, ...rest } = r;
      restored = { ...rest, state: 'ready', health_failures: 0 };
      return restored;
    });
    if (!restored) return;
    this.lastTry.delete(`${spec.name}\u0000${id}`);
    // Out of service in the scheduler (or not there at all after a restart): it joins afresh.
    deps.slots.removeInstance(spec.name, id);
    deps.slots.addReadyInstance(spec.name, id, restored.use_count);
    deps.logger.info('host back in service', { event: 'recovered', fleet: spec.name, instance: id });
  }
}
