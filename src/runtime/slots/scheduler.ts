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
 */
import { ErrorCode, FleetError } from '../../errors.js';
import type { Demand } from '../../model/observed.js';
import type { Clock } from '../../util/clock.js';
import type { Logger } from '../../daemon/logger.js';
import { silentLogger } from '../../daemon/logger.js';
import type { TimerHandle, Timers } from '../../daemon/timers.js';
import type { LedgerWriter } from './ledger-writer.js';
import type {
  Acquisition,
  DemandSource,
  FleetSlotSettings,
  ReleaseOptions,
  Reservation,
  SlotCounts,
  SlotEvent,
  SlotEventKind,
  SlotInstanceView,
  SlotListener,
  UnavailableReason,
} from './types.js';

export interface SlotSchedulerOptions {
  ledger: LedgerWriter;
  clock: Clock;
  timers: Timers;
  logger?: Logger;
}

interface SlotInstance {
  id: string;
  useCount: number;
  /** One entry per slot; the acquisition holding it, if any. */
  slots: (MutableAcquisition | undefined)[];
  unavailable?: UnavailableReason;
}

interface MutableAcquisition {
  id: number;
  fleet: string;
  instanceId: string;
  slot: number;
  acquiredAt: string;
  lost: boolean;
  released: boolean;
}

interface MutableReservation {
  id: number;
  fleet: string;
  valid: boolean;
}

interface Waiter {
  fleet: string;
  resolve: (a: Acquisition) => void;
  reject: (e: Error) => void;
  timer: TimerHandle;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

interface FleetSlots {
  name: string;
  settings: FleetSlotSettings;
  instances: Map<string, SlotInstance>;
  reservations: MutableReservation[];
  waiters: Waiter[];
  /** No reserve/acquire: the fleet is being deleted. */
  closed: boolean;
  /** taskscaler-style operation counters (`fleeting_taskscaler_task_operations_total`). */
  operations: Map<string, number>;
}

const NO_DEMAND: Demand = { acquired: 0, reserved: 0, pending: 0 };

export class SlotScheduler implements DemandSource {
  private readonly fleets = new Map<string, FleetSlots>();
  private readonly listeners = new Set<SlotListener>();
  private readonly logger: Logger;
  private accepting = true;
  private nextId = 1;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: SlotSchedulerOptions) {
    this.logger = opts.logger ?? silentLogger;
  }

  // ---- configuration, driven by the daemon ----

  /** Creates or updates a fleet's settings; existing instances and jobs are kept. */
  configureFleet(fleet: string, settings: FleetSlotSettings): void {
    const f = this.fleets.get(fleet);
    if (f) {
      f.settings = settings;
      for (const inst of f.instances.values()) resizeSlots(inst, settings.capacityPerInstance);
      this.trimReservations(f);
      this.dispatch(f);
    } else {
      this.fleets.set(fleet, {
        name: fleet,
        settings,
        instances: new Map(),
        reservations: [],
        waiters: [],
        closed: false,
        operations: new Map(),
      });
    }
  }

  /** The fleet takes no new jobs (it is being deleted); waiting jobs are refused, running ones go on. */
  closeFleet(fleet: string): void {
    const f = this.fleets.get(fleet);
    if (!f || f.closed) return;
    f.closed = true;
    for (const inst of f.instances.values()) inst.unavailable ??= 'fleet_deleted';
    this.trimReservations(f);
    this.refuseWaiters(f, `fleet ${fleet} is being removed`);
    this.emit(fleet, 'instance');
  }

  /** Forgets a fleet once it has no instances left. */
  dropFleet(fleet: string): void {
    const f = this.fleets.get(fleet);
    if (f && f.instances.size === 0) this.fleets.delete(fleet);
  }

  fleetNames(): string[] {
    return [...this.fleets.keys()].sort();
  }

  /** A ready instance joins (idempotent: a known instance keeps its slots and use count). */
  addReadyInstance(fleet: string, id: string, useCount: number): void {
    const f = this.fleets.get(fleet);
    if (!f || f.instances.has(id)) return;
    const inst: SlotInstance = { id, useCount, slots: [] };
    resizeSlots(inst, f.settings.capacityPerInstance);
    if (f.closed) inst.unavailable = 'fleet_deleted';
    f.instances.set(id, inst);
    this.emit(fleet, 'instance', id);
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
    this.trimReservations(f);
    this.emit(fleet, 'instance', id);
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
    this.trimReservations(f);
    if (claimed.length > 0) this.emit(fleet, 'instance');
    return claimed;
  }

  /** The instance is gone: its running jobs are marked lost (never moved elsewhere). */
  removeInstance(fleet: string, id: string): void {
    const f = this.fleets.get(fleet);
    const inst = f?.instances.get(id);
    if (!f || !inst) return;
    for (const a of inst.slots) if (a) a.lost = true;
    f.instances.delete(id);
    this.trimReservations(f);
    this.emit(fleet, 'instance', id);
    this.notifyIfIdle();
  }

  /** Shutdown: no new reservations or acquisitions anywhere; jobs waiting for a slot are refused. */
  stopAccepting(): void {
    if (!this.accepting) return;
    this.accepting = false;
    for (const [name, f] of this.fleets) {
      for (const r of f.reservations) r.valid = false;
      f.reservations = [];
      this.refuseWaiters(f, 'runfleet is shutting down');
      this.emit(name, 'revoke');
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
      count(f, atMax ? 'reserve_iop_capacity_failure' : 'reserve_available_capacity_failure');
      return undefined;
    }
    const r: MutableReservation = { id: this.nextId++, fleet, valid: true };
    f.reservations.push(r);
    count(f, 'reserve');
    this.emit(fleet, 'reserve');
    return r;
  }

  /** Gives a reservation back (GitLab had no job for it). Harmless on an invalid one. */
  unreserve(reservation: Reservation): void {
    const f = this.fleets.get(reservation.fleet);
    if (!f || !reservation.valid) return;
    this.dropReservation(f, reservation);
    count(f, 'unreserve');
    this.emit(reservation.fleet, 'unreserve');
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
    if (typeof target !== 'string' && target.valid) this.dropReservation(f, target);
    signal?.throwIfAborted();
    const now = this.take(f);
    if (now) {
      count(f, 'acquire');
      this.emit(fleet, 'acquire', now.instanceId);
      return Promise.resolve(now);
    }
    return new Promise<Acquisition>((resolve, reject) => {
      const waiter: Waiter = {
        fleet,
        resolve,
        reject,
        signal,
        timer: this.opts.timers.after(f.settings.acquireTimeoutMs, () => {
          this.removeWaiter(f, waiter);
          count(f, 'acquire_timeout');
          this.emit(fleet, 'timeout');
          reject(
            new FleetError(
              ErrorCode.PROVIDER,
              `no slot on a ready instance of fleet ${fleet} within ${f.settings.acquireTimeoutMs} ms`,
              {
                hint: 'instances are slow to become ready or max_instances is reached; see runfleet status',
                retryable: true,
              },
            ),
          );
        }),
        onAbort: () => {
          this.removeWaiter(f, waiter);
          this.emit(fleet, 'pending');
          reject(signal?.reason as Error);
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      f.waiters.push(waiter);
      count(f, 'pending');
      this.emit(fleet, 'pending');
    });
  }

  /**
   * Ends a job: frees its slot, adds one use, restarts the idle clock; drains the instance at
   * `max_use_count` or when `instanceBroken`. Resolves once the ledger is written. Idempotent.
   */
  async release(acquisition: Acquisition, opts: ReleaseOptions = {}): Promise<void> {
    const a = acquisition as MutableAcquisition;
    if (a.released) return;
    a.released = true;
    const f = this.fleets.get(a.fleet);
    const inst = f?.instances.get(a.instanceId);
    const now = this.opts.clock.now().toISOString();
    if (!f) return;
    count(f, opts.failed ? 'release_failed' : 'release');
    if (!inst || a.lost) {
      this.emit(a.fleet, 'release', a.instanceId);
      this.notifyIfIdle();
      return;
    }
    if (inst.slots[a.slot] === a) inst.slots[a.slot] = undefined;
    inst.useCount++;
    if (opts.instanceBroken) inst.unavailable ??= 'unhealthy';
    else if (exhausted(inst, f.settings)) inst.unavailable ??= 'max_use_count';
    const useCount = inst.useCount;
    const held = acquiredOn(inst);
    const drain = inst.unavailable;
    this.trimReservations(f);
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
    } finally {
      this.emit(a.fleet, 'release', a.instanceId);
    }
  }

  // ---- views ----

  demand(fleet: string): Demand {
    const f = this.fleets.get(fleet);
    if (!f) return { ...NO_DEMAND };
    let acquired = 0;
    for (const inst of f.instances.values()) acquired += acquiredOn(inst);
    return { acquired, reserved: f.reservations.length, pending: f.waiters.length };
  }

  counts(fleet: string): SlotCounts {
    const c: SlotCounts = { idle: 0, reserved: 0, acquired: 0, pending: 0, unavailable: 0, unhealthy: 0 };
    const f = this.fleets.get(fleet);
    if (!f) return c;
    for (const inst of f.instances.values()) {
      const held = acquiredOn(inst);
      c.acquired += held;
      const free = inst.slots.length - held;
      if (inst.unavailable === 'unhealthy') c.unhealthy += free;
      else if (inst.unavailable) c.unavailable += free;
      else c.idle += slotsFree(inst, f.settings);
    }
    c.reserved = f.reservations.length;
    c.idle = Math.max(0, c.idle - c.reserved);
    c.pending = f.waiters.length;
    return c;
  }

  instances(fleet: string): SlotInstanceView[] {
    const f = this.fleets.get(fleet);
    if (!f) return [];
    return [...f.instances.values()]
      .map((inst) => {
        const view: SlotInstanceView = {
          id: inst.id,
          available: !inst.unavailable,
          useCount: inst.useCount,
          acquired: acquiredOn(inst),
          slots: inst.slots.flatMap((a, i) => (a ? [i] : [])),
        };
        if (inst.unavailable) view.reason = inst.unavailable;
        return view;
      })
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
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
    for (const f of this.fleets.values()) for (const inst of f.instances.values()) n += acquiredOn(inst);
    return n;
  }

  /** Resolves when no job holds a slot anywhere. */
  whenNoAcquisitions(): Promise<void> {
    if (this.activeAcquisitions() === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  subscribe(listener: SlotListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---- internals ----

  private take(f: FleetSlots): Acquisition | undefined {
    // Pack jobs onto the busiest instance, so the others go idle and can be scaled in.
    let best: SlotInstance | undefined;
    for (const inst of f.instances.values()) {
      if (slotsFree(inst, f.settings) <= 0) continue;
      if (!best || compareForPacking(inst, best) < 0) best = inst;
    }
    if (!best) return undefined;
    const slot = best.slots.findIndex((s) => s === undefined);
    const a: MutableAcquisition = {
      id: this.nextId++,
      fleet: f.name,
      instanceId: best.id,
      slot,
      acquiredAt: this.opts.clock.now().toISOString(),
      lost: false,
      released: false,
    };
    best.slots[slot] = a;
    const held = acquiredOn(best);
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
      const waiter = f.waiters.shift() as Waiter;
      waiter.timer.cancel();
      waiter.signal?.removeEventListener('abort', waiter.onAbort);
      count(f, 'acquire');
      this.emit(waiter.fleet, 'acquire', a.instanceId);
      waiter.resolve(a);
    }
  }

  private dropReservation(f: FleetSlots, r: Reservation): void {
    const i = f.reservations.findIndex((x) => x.id === r.id);
    if (i >= 0) f.reservations.splice(i, 1);
    (r as MutableReservation).valid = false;
  }

  /** Never more reservations than idle slots: the oldest surplus ones are revoked. */
  private trimReservations(f: FleetSlots): void {
    const limit = this.accepting && !f.closed ? freeSlots(f) : 0;
    while (f.reservations.length > limit) {
      const r = f.reservations.shift() as MutableReservation;
      r.valid = false;
      count(f, 'reservation_revoked');
    }
  }

  private refuseWaiters(f: FleetSlots, why: string): void {
    for (const w of f.waiters.splice(0)) {
      w.timer.cancel();
      w.signal?.removeEventListener('abort', w.onAbort);
      w.reject(new FleetError(ErrorCode.APPLY_ABORTED, why));
    }
  }

  private removeWaiter(f: FleetSlots, w: Waiter): void {
    const i = f.waiters.indexOf(w);
    if (i >= 0) f.waiters.splice(i, 1);
    w.timer.cancel();
    w.signal?.removeEventListener('abort', w.onAbort);
  }

  private notifyIfIdle(): void {
    if (this.idleWaiters.length === 0 || this.activeAcquisitions() > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private emit(fleet: string, kind: SlotEventKind, instanceId?: string): void {
    const event: SlotEvent = instanceId === undefined ? { fleet, kind } : { fleet, kind, instanceId };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (e) {
        this.logger.error('slot listener failed', { fleet, error: String(e) });
      }
    }
  }
}

function resizeSlots(inst: SlotInstance, capacity: number): void {
  const cap = Math.max(1, capacity);
  // Shrinking keeps slots still held by jobs; they disappear once released.
  while (inst.slots.length < cap) inst.slots.push(undefined);
  while (inst.slots.length > cap && inst.slots[inst.slots.length - 1] === undefined) inst.slots.pop();
}

function acquiredOn(inst: SlotInstance): number {
  let n = 0;
  for (const s of inst.slots) if (s) n++;
  return n;
}

function exhausted(inst: SlotInstance, s: FleetSlotSettings): boolean {
  return s.maxUseCount > 0 && inst.useCount >= s.maxUseCount;
}

/** Slots a new job may take: running jobs count toward max_use_count already. */
function slotsFree(inst: SlotInstance, s: FleetSlotSettings): number {
  if (inst.unavailable) return 0;
  const held = acquiredOn(inst);
  const bySlots = Math.max(0, inst.slots.length - held);
  if (s.maxUseCount <= 0) return bySlots;
  return Math.max(0, Math.min(bySlots, s.maxUseCount - inst.useCount - held));
}

function freeSlots(f: FleetSlots): number {
  let n = 0;
  for (const inst of f.instances.values()) n += slotsFree(inst, f.settings);
  return n;
}

function compareForPacking(a: SlotInstance, b: SlotInstance): number {
  return acquiredOn(b) - acquiredOn(a) || b.useCount - a.useCount || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function count(f: FleetSlots, operation: string): void {
  f.operations.set(operation, (f.operations.get(operation) ?? 0) + 1);
}
