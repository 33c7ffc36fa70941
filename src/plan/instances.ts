/**
 * Merges the provider's view of a group (truth about existence) with the ledger (runfleet's own
 * facts: use counts, idle clocks, acquired slots, health) into the instances the capacity function
 * reasons about. Pure.
 */
import type { LedgerInstance, ObservedInstance } from '../model/observed.js';
import type { CapacityInstance, CapacityInstanceState } from './capacity.js';

/** Consecutive failed heartbeats after which an instance counts as unhealthy (GitLab's failure_threshold). */
export const UNHEALTHY_AFTER_FAILURES = 3;

const LEDGER_STATE_FOR_RUNNING: Record<LedgerInstance['state'], CapacityInstanceState> = {
  creating: 'creating', // running at the provider, but runfleet has not found it ready yet
  ready: 'ready',
  in_use: 'in_use',
  draining: 'draining',
  deleting: 'deleting',
  gone: 'ready', // the ledger gave it up, yet it runs: adopt it again
};

/**
 * One `CapacityInstance` per instance the provider shows that is not gone. Provider `creating` and
 * `deleting` win over the ledger; a `running` instance takes the ledger's state, and one the ledger
 * has never seen is adopted as `ready` with use_count 0. Ledger rows for instances the provider no
 * longer shows are ignored. `ledgerById` holds the fleet's ledger rows by instance id.
 */
export function mergeInstances(
  observed: readonly ObservedInstance[],
  ledgerById: ReadonlyMap<string, LedgerInstance>,
): CapacityInstance[] {
  const merged: CapacityInstance[] = [];
  for (const obs of observed) {
    if (obs.state === 'gone') continue;
    const row = ledgerById.get(obs.id);
    const state: CapacityInstanceState =
      obs.state === 'running' ? (row ? LEDGER_STATE_FOR_RUNNING[row.state] : 'ready') : obs.state;
    const inst: CapacityInstance = {
      id: obs.id,
      state,
      created_at: row?.created_at ?? obs.launched_at,
      use_count: row?.use_count ?? 0,
      acquired: row?.acquired ?? 0,
      healthy: obs.healthy !== false && (row?.health_failures ?? 0) < UNHEALTHY_AFTER_FAILURES,
    };
    if (row?.ready_at) inst.ready_at = row.ready_at;
    if (row?.last_used_at) inst.last_used_at = row.last_used_at;
    if (row?.drain_reason) inst.drain_reason = row.drain_reason;
    merged.push(inst);
  }
  return merged;
}
