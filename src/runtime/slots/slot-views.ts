/**
 * Read-only views of one fleet's slots: the demand the capacity loop plans with, the slot counts
 * GitLab's taskscaler metrics report, and the per-instance rows of `runfleet status`. Pure
 * functions of the bookkeeping; an unknown fleet (undefined) reads as empty.
 */
import type { Demand } from '../../model/observed.js';
import { acquiredIn, acquiredOn, compareIds, slotsFree, type FleetSlots } from './fleet-slots.js';
import type { SlotCounts, SlotInstanceView } from './types.js';

export function demandOf(f: FleetSlots | undefined): Demand {
  if (!f) return { acquired: 0, reserved: 0, pending: 0 };
  return { acquired: acquiredIn(f), reserved: f.reservations.length, pending: f.waiters.length };
}

export function countsOf(f: FleetSlots | undefined): SlotCounts {
  const c: SlotCounts = { idle: 0, reserved: 0, acquired: 0, pending: 0, unavailable: 0, unhealthy: 0 };
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

/** Sorted by instance id. */
export function instanceViewsOf(f: FleetSlots | undefined): SlotInstanceView[] {
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
    .sort((a, b) => compareIds(a.id, b.id));
}
