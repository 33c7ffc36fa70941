/**
 * The slot scheduler: per fleet, `capacity_per_instance` job slots on every ready instance. The job
 * runtime reserves, acquires and releases slots; the daemon feeds it ready instances and takes
 * idle ones away for removal. Every transition emits a change event, which is how demand reaches
 * the capacity loop at once instead of on the next tick.
 *
 * Rules that keep GitLab's known traps shut:
 * - A reservation is a count, never bound to an instance, and never exceeds the idle slots: when
 *   scale-in takes an idle instance, surplus reservations are revoked rather than pinning it
 *   (taskscaler MR !60). Reservations are idle capacity, so the daemon does not count them as use.
 * - An instance claimed for removal has no acquired slot at the moment of the claim, and can
 *   never be acquired afterwards (the claim is synchronous, so no job can slip in between).
 * - An instance reaching `max_use_count` (jobs running on it included) takes no new job and is
 *   drained when its last job ends.
 *
 * This class decides when things happen (events, ledger writes, dispatch); the per-fleet
 * bookkeeping is in `fleet-slots.ts`, the waiting jobs in `wait-queue.ts`, the read-only views in
 * `slot-views.ts` and the event fan-out in `slot-events.ts`.
 */
import type { Logger } from '../../util/logger.js';
import { silentLogger } from '../../util/logger.js';
import type { Time } from '../../util/time.js';
import { ErrorCode, FleetError } from '../../errors.js';
import type { Demand } from '../../model/observed.js';
import {
  acquiredIn,
  acquiredOn,
  countOperation,
  dropReservation,
  exhausted,
  freeSlots,
  instanceForNextJob,
  newFleetSlots,
  resizeSlots,
  trimReservations,
  type FleetSlots,
  type MutableAcquisition,
  type MutableReservation,
  type SlotInstance,
} from './fleet-slots.js';
import type { LedgerWriter } from '../../store/ledger-writer.js';
import { SlotEvents } from './slot-events.js';
import { countsOf, demandOf, instanceViewsOf } from './slot-views.js';
import type {
  Acquisition,
  DemandSource,
  FleetSlotSettings,
  ReleaseOptions,
  Reservation,
  SlotCounts,
  SlotInstanceView,
  SlotListener,
  UnavailableReason,
} from './types.js';
import { acquireTimeoutError, type Waiter } from './wait-queue.js';

export interface SlotSchedulerOptions {
  ledger: LedgerWriter;
  time: Time;
  logger?: Logger;
}

export class SlotScheduler implements DemandSource {
  private readonly fleets = new Map<string, FleetSlots>();
  private readonly logger: Logger;
  private readonly events: SlotEvents;
  private accepting = true;
  private nextId = 1;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: SlotSchedulerOptions) {
    this.logger = opts.logger ?? silentLogger;
    this.events = new SlotEvents(this.logger);
  }

  // ---- configuration, driven by the daemon ----

  /** Creates or updates a fleet's settings; existing instances and jobs are kept. */
  configureFleet(fleet: string, settings: FleetSlotSettings): void {
    const f = this.fleets.get(fleet);
    if (f) {
      f.settings = settings;
      for (const inst of f.instances.values()) resizeSlots(inst, settings.capacityPerInstance);
      trimReservations(f, this.accepting);
      this.dispatch(f);
    } else {
      this.fleets.set(fleet, newFleetSlots(fleet, settings));
    }
  }

  /** The fleet takes no new jobs (it is being deleted); waiting jobs are refused, running ones go on. */
  closeFleet(fleet: string): void {
    const f = this.fleets.get(fleet);
    if (!f || f.closed) return;
    f.closed = true;
    for (const inst of f.instances.values()) inst.unavailable ??= 'fleet_deleted';
    trimReservations(f, this.accepting);
    f.waiters.refuseAll(`fleet ${fleet} is being removed`);
    this.events.emit(fleet, 'instance');
  }

  /** Forgets a fleet once it has no instances left. */
  dropFleet(fleet: string): void {
    const f = this.fleets.get(fleet);
    if (f && f.instances.size === 0) this.fleets.delete(fleet);
  }

  /** A ready instance joins (idempotent: a known instance keeps its slots and use count). */
  addReadyInstance(fleet: string, id: string, useCount: number): void {
    const f = this.fleets.get(fleet);
    if (!f || f.instances.has(id)) return;
    const inst: SlotInstance = { id, useCount, slots: [], held: 0 };
    resizeSlots(inst, f.settings.capacityPerInstance);
    if (f.closed) inst.unavailable = 'fleet_deleted';
    f.instances.set(id, inst);
    this.events.emit(fleet, 'instance', id);
    this.dispatch(f);
  }

  hasInstance(fleet: string, id: string): boolean {
    return this.fleets.get(fleet)?.instances.has(id) === true;
  }

  /** The instance takes no new jobs; running ones finish. */
  markUnavailable(fleet: string, id: string, reason: UnavailableReason): void {
    const f = this.fleets.get(fleet);
    const inst = f?.instances.get(id);
    if (!f || !inst || inst.unavailable) return;
    inst.unavailable = reason;
    trimReservations(f, this.accepting);
    this.events.emit(fleet, 'instance', id);
  }

  /**
   * Takes the idle instances among `ids` out of service for removal and returns them; busy ones
   * (any acquired slot) are left alone and not returned. Synchronous on purpose: no job can acquire
   * a slot between this check and the claim.
   */
  claimForRemoval(fleet: string, ids: readonly string[], reason: UnavailableReason): string[] {
    const f = this.fleets.get(fleet);
    if (!f) return [...ids];
    const claimed: string[] = [];
    for (const id of ids) {
      const inst = f.instances.get(id);
      if (!inst) {
        claimed.push(id); // not in service here (creating, draining, unknown): nothing can run on it
        continue;
      }
      if (acquiredOn(inst) > 0) continue;
      inst.unavailable ??= reason;
      claimed.push(id);
    }
    trimReservations(f, this.accepting);
    if (claimed.length > 0) this.events.emit(fleet, 'instance');
    return claimed;
  }

  /** The instance is gone: its running jobs are marked lost (never moved elsewhere). */
  removeInstance(fleet: string, id: string): void {
    const f = this.fleets.get(fleet);
    const inst = f?.instances.get(id);
    if (!f || !inst) return;
    for (const a of inst.slots) if (a) a.lost = true;
    f.instances.delete(id);
    trimReservations(f, this.accepting);
    this.events.emit(fleet, 'instance', id);
    this.notifyIfIdle();
  }

  /** Shutdown: no new reservations or acquisitions anywhere; jobs waiting for a slot are refused. */
  stopAccepting(): void {
    if (!this.accepting) return;
    this.accepting = false;
    for (const [name, f] of this.fleets) {
      for (const r of f.reservations) r.valid = false;
      f.reservations = [];
      f.waiters.refuseAll('runfleet is shutting down');
      this.events.emit(name, 'revoke');
    }
  }

  // ---- the runtime's side ----

  /**
   * Preemptive reserve: succeeds only while an idle slot on a ready instance is not yet reserved.
   * Returns undefined when there is none (the caller must not ask GitLab for a job).
   */
  reserve(fleet: string): Reservation | undefined {
    const f = this.fleets.get(fleet);
    if (!f || f.closed || !this.accepting) return undefined;
    if (f.reservations.length >= freeSlots(f)) {
      const atMax = f.settings.maxInstances > 0 && f.instances.size >= f.settings.maxInstances;
      countOperation(f, atMax ? 'reserve_iop_capacity_failure' : 'reserve_available_capacity_failure');
      return undefined;
    }
    const r: MutableReservation = { id: this.nextId++, fleet, valid: true };
    f.reservations.push(r);
    countOperation(f, 'reserve');
    this.events.emit(fleet, 'reserve');
    return r;
  }

  /** Gives a reservation back (GitLab had no job for it). Harmless on an invalid one. */
  unreserve(reservation: Reservation): void {
    const f = this.fleets.get(reservation.fleet);
    if (!f || !reservation.valid) return;
    dropReservation(f, reservation as MutableReservation);
    countOperation(f, 'unreserve');
    this.events.emit(reservation.fleet, 'unreserve');
  }

  /**
   * A slot on a ready instance for one job: at once when one is idle, else waits (pending) until
   * one frees up or an instance becomes ready, up to the fleet's acquire timeout.
   * @throws FleetError(PROVIDER, retryable) on timeout; the signal's reason when aborted;
   *         FleetError(APPLY_ABORTED) when the scheduler stops accepting jobs.
   */
  acquire(target: string | Reservation, signal?: AbortSignal): Promise<Acquisition> {
    const fleet = typeof target === 'string' ? target : target.fleet;
    const f = this.fleets.get(fleet);
    if (!f || f.closed || !this.accepting) {
      return Promise.reject(
        new FleetError(ErrorCode.APPLY_ABORTED, `fleet ${fleet} takes no jobs now`, {
          hint: f ? 'the fleet is being removed or runfleet is shutting down' : 'no such fleet',
        }),
      );
    }
    if (typeof target !== 'string' && target.valid) dropReservation(f, target as MutableReservation);
    signal?.throwIfAborted();
    const now = this.take(f);
    if (now) {
      countOperation(f, 'acquire');
      this.events.emit(fleet, 'acquire', now.instanceId);
      return Promise.resolve(now);
    }
    return f.waiters.wait({
      fleet,
      time: this.opts.time,
      timeoutMs: f.settings.acquireTimeoutMs,
      signal,
      onQueued: () => {
        countOperation(f, 'pending');
        this.events.emit(fleet, 'pending');
      },
      onTimeout: () => {
        countOperation(f, 'acquire_timeout');
        this.events.emit(fleet, 'timeout');
        return acquireTimeoutError(fleet, f.settings.acquireTimeoutMs);
      },
      onAbort: () => this.events.emit(fleet, 'pending'),
    });
  }

  /**
   * Ends a job: frees its slot, adds one use, restarts the idle time; drains the instance at
   * `max_use_count` or when `instanceBroken`. Resolves once the ledger is written (or the write failed:
   * logged, never thrown, so a job ends alike with the database gone). Idempotent.
   */
  async release(acquisition: Acquisition, opts: ReleaseOptions = {}): Promise<void> {
    const a = acquisition as MutableAcquisition;
    if (a.released) return;
    a.released = true;
    const f = this.fleets.get(a.fleet);
    const inst = f?.instances.get(a.instanceId);
    const now = this.opts.time.now().toISOString();
    if (!f) return;
    countOperation(f, opts.failed ? 'release_failed' : 'release');
    if (!inst || a.lost) {
      this.events.emit(a.fleet, 'release', a.instanceId);
      this.notifyIfIdle();
      return;
    }
    if (inst.slots[a.slot] === a) {
      inst.slots[a.slot] = undefined;
      inst.held--;
    }
    inst.useCount++;
    if (opts.instanceBroken) inst.unavailable ??= 'unhealthy';
    else if (exhausted(inst, f.settings)) inst.unavailable ??= 'max_use_count';
    const useCount = inst.useCount;
    const held = acquiredOn(inst);
    const drain = inst.unavailable;
    trimReservations(f, this.accepting);
    this.dispatch(f);
    this.notifyIfIdle();
    // The event goes out once the ledger holds the new use count and drain: the pass it triggers
    // plans from the ledger, and must see the instance as used up to remove it at once.
    try {
      await this.opts.ledger.update(a.fleet, a.instanceId, (row) => ({
        ...row,
        use_count: Math.max(row.use_count + 1, useCount),
        last_used_at: now,
        acquired: held,
        health_failures: opts.instanceBroken ? row.health_failures + 1 : row.health_failures,
        state: drain ? 'draining' : held > 0 ? 'in_use' : 'ready',
        ...(drain ? { drain_reason: drain } : {}),
      }));
    } catch (e) {
      // The database gone (or the lease lost) must not fail the job that just ended: its slot is
      // free here already, and the next write of the row carries the use count (Math.max above).
      this.logger.error('ledger write failed', { fleet: a.fleet, error: String(e) });
    } finally {
      this.events.emit(a.fleet, 'release', a.instanceId);
    }
  }

  // ---- views ----

  demand(fleet: string): Demand {
    return demandOf(this.fleets.get(fleet));
  }

  counts(fleet: string): SlotCounts {
    return countsOf(this.fleets.get(fleet));
  }

  instances(fleet: string): SlotInstanceView[] {
    return instanceViewsOf(this.fleets.get(fleet));
  }

  operations(fleet: string): ReadonlyMap<string, number> {
    return this.fleets.get(fleet)?.operations ?? new Map();
  }

  isBusy(fleet: string, id: string): boolean {
    const inst = this.fleets.get(fleet)?.instances.get(id);
    return inst ? acquiredOn(inst) > 0 : false;
  }

  /** Running jobs across all fleets. */
  activeAcquisitions(): number {
    let n = 0;
    for (const f of this.fleets.values()) n += acquiredIn(f);
    return n;
  }

  /** Resolves when no job holds a slot anywhere. */
  whenNoAcquisitions(): Promise<void> {
    if (this.activeAcquisitions() === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  subscribe(listener: SlotListener): () => void {
    return this.events.subscribe(listener);
  }

  // ---- internals ----

  private take(f: FleetSlots): Acquisition | undefined {
    const best = instanceForNextJob(f);
    if (!best) return undefined;
    const slot = best.slots.findIndex((s) => s === undefined);
    const a: MutableAcquisition = {
      id: this.nextId++,
      fleet: f.name,
      instanceId: best.id,
      slot,
      acquiredAt: this.opts.time.now().toISOString(),
      lost: false,
      released: false,
    };
    best.slots[slot] = a;
    const held = ++best.held;
    void this.opts.ledger
      .update(a.fleet, a.instanceId, (row) => ({ ...row, acquired: held, state: 'in_use' }))
      .catch((e: unknown) => this.logger.error('ledger write failed', { fleet: a.fleet, error: String(e) }));
    return a;
  }

  /** Serves waiting jobs while slots are free, first come first served. */
  private dispatch(f: FleetSlots): void {
    while (f.waiters.length > 0 && this.accepting && !f.closed) {
      const a = this.take(f);
      if (!a) return;
      const waiter = f.waiters.next() as Waiter;
      countOperation(f, 'acquire');
      this.events.emit(waiter.fleet, 'acquire', a.instanceId);
      waiter.resolve(a);
    }
  }

  private notifyIfIdle(): void {
    if (this.idleWaiters.length === 0 || this.activeAcquisitions() > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
