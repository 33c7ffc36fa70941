/**
 * Per-fleet slot bookkeeping behind the slot scheduler: the instances and their slots, the
 * reservations, the queue of waiting jobs and the operation counters of one fleet, plus the pure
 * arithmetic over them (free slots, packing order). Nothing here emits events or writes the ledger:
 * that is the scheduler's job, so every rule about *when* things happen stays in one place.
 */
import type { FleetSlotSettings, UnavailableReason } from './types.js';
import { WaitQueue } from './wait-queue.js';

export interface SlotInstance {
  id: string;
  useCount: number;
  /** One entry per slot; the acquisition holding it, if any. */
  slots: (MutableAcquisition | undefined)[];
  /**
   * Entries of `slots` that hold an acquisition, kept by the scheduler where it fills and clears
   * them: every job request and acquisition asks, and counting 50 slots × 20 instances each time
   * was a visible share of a 1,000-job burst.
   */
  held: number;
  unavailable?: UnavailableReason;
}

/** The scheduler's own view of an `Acquisition`: callers get it typed read-only. */
export interface MutableAcquisition {
  id: number;
  fleet: string;
  instanceId: string;
  slot: number;
  acquiredAt: string;
  lost: boolean;
  released: boolean;
}

/** The scheduler's own view of a `Reservation`: callers get it typed read-only. */
export interface MutableReservation {
  id: number;
  fleet: string;
  valid: boolean;
}

export interface FleetSlots {
  name: string;
  settings: FleetSlotSettings;
  instances: Map<string, SlotInstance>;
  reservations: MutableReservation[];
  /** Jobs in `acquire` waiting for a slot, first come first served. */
  readonly waiters: WaitQueue;
  /** No reserve/acquire: the fleet is being deleted. */
  closed: boolean;
  /** taskscaler-style operation counters (`fleeting_taskscaler_task_operations_total`). */
  operations: Map<string, number>;
}

export function newFleetSlots(name: string, settings: FleetSlotSettings): FleetSlots {
  return {
    name,
    settings,
    instances: new Map(),
    reservations: [],
    waiters: new WaitQueue(),
    closed: false,
    operations: new Map(),
  };
}

export function resizeSlots(inst: SlotInstance, capacity: number): void {
  const cap = Math.max(1, capacity);
  // Shrinking keeps slots still held by jobs; they disappear once released.
  while (inst.slots.length < cap) inst.slots.push(undefined);
  while (inst.slots.length > cap && inst.slots[inst.slots.length - 1] === undefined) inst.slots.pop();
}

export function acquiredOn(inst: SlotInstance): number {
  return inst.held;
}

/** Running jobs on every instance of the fleet. */
export function acquiredIn(f: FleetSlots): number {
  let n = 0;
  for (const inst of f.instances.values()) n += acquiredOn(inst);
  return n;
}

export function exhausted(inst: SlotInstance, s: FleetSlotSettings): boolean {
  return s.maxUseCount > 0 && inst.useCount >= s.maxUseCount;
}

/** Slots a new job may take: running jobs count toward max_use_count already. */
export function slotsFree(inst: SlotInstance, s: FleetSlotSettings): number {
  if (inst.unavailable) return 0;
  const held = acquiredOn(inst);
  const bySlots = Math.max(0, inst.slots.length - held);
  if (s.maxUseCount <= 0) return bySlots;
  return Math.max(0, Math.min(bySlots, s.maxUseCount - inst.useCount - held));
}

export function freeSlots(f: FleetSlots): number {
  let n = 0;
  for (const inst of f.instances.values()) n += slotsFree(inst, f.settings);
  return n;
}

/**
 * The instance a new job goes to, if any has a free slot: the busiest one, so the others go idle
 * and can be scaled in.
 */
export function instanceForNextJob(f: FleetSlots): SlotInstance | undefined {
  let best: SlotInstance | undefined;
  for (const inst of f.instances.values()) {
    if (slotsFree(inst, f.settings) <= 0) continue;
    if (!best || compareForPacking(inst, best) < 0) best = inst;
  }
  return best;
}

function compareForPacking(a: SlotInstance, b: SlotInstance): number {
  return acquiredOn(b) - acquiredOn(a) || b.useCount - a.useCount || compareIds(a.id, b.id);
}

export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Removes `r` from the fleet's reservations and marks it invalid. */
export function dropReservation(f: FleetSlots, r: MutableReservation): void {
  const i = f.reservations.findIndex((x) => x.id === r.id);
  if (i >= 0) f.reservations.splice(i, 1);
  r.valid = false;
}

/**
 * Never more reservations than idle slots, and none at all while the scheduler is not accepting or
 * the fleet is closed: the oldest surplus ones are revoked.
 */
export function trimReservations(f: FleetSlots, accepting: boolean): void {
  const limit = accepting && !f.closed ? freeSlots(f) : 0;
  while (f.reservations.length > limit) {
    const r = f.reservations.shift() as MutableReservation;
    r.valid = false;
    countOperation(f, 'reservation_revoked');
  }
}

export function countOperation(f: FleetSlots, operation: string): void {
  f.operations.set(operation, (f.operations.get(operation) ?? 0) + 1);
}
