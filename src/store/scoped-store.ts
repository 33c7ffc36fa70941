/**
 * A manager's view of a shared store: only the fleets it owns now. Reads leave the others out
 * (so a manager never plans a fleet it does not own, nor takes another's applied fleet for a
 * deleted one), writes to them fail with FleetError(FENCED) before reaching the database. The
 * database's own fence (`pg-leases.ts`, migration 3) still checks every write's term.
 */
import { FleetError } from '../errors.js';
import type { AppliedFleet, LedgerInstance } from '../model/observed.js';
import type { ApplyRecord, Intent, LockInfo, StateStore } from './store.js';

export function scopedStore(store: StateStore, owns: (fleet: string) => boolean): StateStore {
  const guard = (fleet: string, what: string) => {
    if (!owns(fleet)) {
      throw new FleetError('FENCED', `cannot ${what}: this manager does not own fleet ${fleet}`, {
        hint: 'the fleet’s lease belongs to another manager (runfleet managers)',
      });
    }
  };
  return {
    location: store.location,
    listFleets: async (): Promise<AppliedFleet[]> => (await store.listFleets()).filter((f) => owns(f.name)),
    putFleet: async (f: AppliedFleet) => {
      guard(f.name, `write fleet ${f.name}`);
      await store.putFleet(f);
    },
    deleteFleet: async (name: string) => {
      guard(name, `delete fleet ${name}`);
      await store.deleteFleet(name);
    },
    listInstances: async (fleet?: string): Promise<LedgerInstance[]> =>
      fleet === undefined
        ? (await store.listInstances()).filter((i) => owns(i.fleet))
        : owns(fleet)
          ? store.listInstances(fleet)
          : [],
    getInstance: async (fleet: string, id: string) =>
      owns(fleet) ? store.getInstance(fleet, id) : undefined,
    putInstance: async (i: LedgerInstance) => {
      guard(i.fleet, `write instance ${i.fleet}/${i.id}`);
      await store.putInstance(i);
    },
    deleteInstance: async (fleet: string, id: string) => {
      guard(fleet, `delete instance ${fleet}/${id}`);
      await store.deleteInstance(fleet, id);
    },
    openIntent: async (fleet: string, action: string, detail: Record<string, unknown>) => {
      guard(fleet, `record intent ${action} on ${fleet}`);
      return store.openIntent(fleet, action, detail);
    },
    closeIntent: (id: number, outcome: string) => store.closeIntent(id, outcome),
    listOpenIntents: async (): Promise<Intent[]> =>
      (await store.listOpenIntents()).filter((i) => owns(i.fleet)),
    recordApply: (r: ApplyRecord) => store.recordApply(r),
    listApplies: (limit?: number) => store.listApplies(limit),
    acquireLock: (operation: string, who: string): Promise<LockInfo> => store.acquireLock(operation, who),
    releaseLock: (id: string) => store.releaseLock(id),
    forceUnlock: (id: string) => store.forceUnlock(id),
    currentLock: () => store.currentLock(),
    // The shared store is closed by whoever opened it.
    close: async () => undefined,
  };
}
