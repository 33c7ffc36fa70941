/**
 * What a killed `runfleet apply` or `watch` left in flight, resolved by the next process that takes
 * the state lock, `plan` and `apply` as well as `watch`: open intents are closed (an interrupted
 * removal is carried out, except by `plan`), slots of the dead process are given up, and instances
 * the provider shows that the ledger does not know (an `increase` whose outcome was never
 * recorded) are adopted as `creating`, so they are neither created twice nor lost. The same steps
 * as the daemon's start (`resolveAfterRestart`, then `syncInstances`), so all three agree.
 */
import { basisOf, observeState, type ObserveResult } from '../apply/observe.js';
import type { DesiredFleet, Fleet } from '../model/fleet.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { SlotScheduler } from '../runtime/slots/scheduler.js';
import { LedgerWriter } from '../store/ledger-writer.js';
import type { StateStore } from '../store/store.js';
import type { Logger } from '../util/logger.js';
import type { Time } from '../util/time.js';
import { resolveAfterRestart, syncInstances } from './instance-sync.js';

export interface Leftovers {
  /** Open intents closed. */
  intents: number;
  adopted: string[];
  /** Removals carried out again. */
  retried: string[];
  /** Instances that held jobs of the dead process, now draining. */
  drained: string[];
}

export interface LeftoverDeps {
  store: StateStore;
  providers: ProviderRegistry;
  time: Time;
  logger: Logger;
}

/**
 * Call with the state lock held, with an observation made under it. Returns what was resolved and
 * the observation to plan with: the same one with the ledger re-read when only the ledger changed
 * (no second round of provider calls), a fresh one when a removal was carried out.
 */
export async function resolveLeftovers(
  desired: DesiredFleet[],
  seen: ObserveResult,
  deps: LeftoverDeps,
  opts: { retryRemovals: boolean },
): Promise<{ leftovers: Leftovers; seen: ObserveResult }> {
  // Instances live in the group the fleet was applied with; a fleet not applied yet has none.
  const specs = new Map<string, Fleet>(desired.map((d) => [d.spec.name, d.spec]));
  for (const a of await deps.store.listFleets()) specs.set(a.name, a.spec);
  const ledger = new LedgerWriter(deps.store);
  // No job runs in this process: a scheduler with no fleet configured makes every slot call a no-op.
  const slots = new SlotScheduler({ ledger, time: deps.time, logger: deps.logger });
  const sync = { ...deps, ledger, slots };
  const restart = await resolveAfterRestart(specs, sync, opts);
  if (restart.retried.length > 0) seen = await observeState(desired, deps.store, deps.providers);
  else if (restart.intents + restart.drained.length > 0)
    seen.observed.ledger = await deps.store.listInstances();
  const { adopted, changed } = await syncInstances(seen.observed, specs, true, sync);
  await ledger.flush();
  if (changed) seen.observed.ledger = await deps.store.listInstances();
  seen.basis = basisOf(seen.observed, desired);
  const leftovers = { intents: restart.intents, adopted, retried: restart.retried, drained: restart.drained };
  return { leftovers, seen };
}

/** One line for the CLI, or undefined when nothing was left. */
export function describeLeftovers(l: Leftovers): string | undefined {
  if (l.intents + l.adopted.length + l.retried.length + l.drained.length === 0) return undefined;
  // Instances the state did not list, with nothing else in flight: most often a group adopted
  // with instances already in it, not a crash, so do not call it an interrupted run.
  if (l.intents + l.retried.length + l.drained.length === 0) {
    return `Adopted ${l.adopted.length} instance(s) the provider shows that the state did not list yet.`;
  }
  const parts = [`closed ${l.intents} open intent(s)`, `adopted ${l.adopted.length} instance(s)`];
  if (l.retried.length > 0) parts.push(`removed ${l.retried.length} instance(s) whose removal was cut short`);
  if (l.drained.length > 0) parts.push(`drained ${l.drained.length} instance(s) that held its jobs`);
  return `State left by an interrupted run: ${parts.join(', ')}.`;
}
