/**
 * Keeps the ledger and the slot scheduler in line with what providers show, and resolves what a
 * previous run left in flight. Never deletes an instance it does not know: unknown instances are
 * adopted (and probed before they take jobs), vanished ones are forgotten, and only removals that
 * were already decided (an open `decrease` intent, a row stuck in `deleting`) are retried.
 */
import { asError } from '../errors.js';
import type { Fleet } from '../model/fleet.js';
import { groupRefFor } from '../model/group.js';
import type { LedgerInstance, ObservedGroup, ObservedState } from '../model/observed.js';
import { UNHEALTHY_AFTER_FAILURES } from '../plan/index.js';
import type { ProviderRegistry } from '../providers/registry.js';
import type { LedgerWriter } from '../store/ledger-writer.js';
import type { SlotScheduler } from '../runtime/slots/scheduler.js';
import type { UnavailableReason } from '../runtime/slots/types.js';
import type { StateStore } from '../store/store.js';
import type { Time } from '../util/time.js';
import type { Logger } from '../util/logger.js';

export interface SyncDeps {
  store: StateStore;
  ledger: LedgerWriter;
  providers: ProviderRegistry;
  slots: SlotScheduler;
  time: Time;
  logger: Logger;
  /** Called with each instance that left (for the life-time histogram). */
  onGone?: (fleet: string, row: LedgerInstance) => void;
  /** Told of each provider call that failed (for status and metrics). */
  onProviderError?: (fleet: string, during: string, error: unknown) => void;
  /**
   * Instances whose removal was sent (it may have taken effect even when its answer was lost):
   * never adopted again while a provider still lists them, since a listing can lag a terminate.
   */
  removing?: RemovalMemory;
}

/**
 * The ids of instances runfleet asked the provider to remove, per fleet, until a fresh observation
 * no longer shows them (or `ttlMs` passed, so an id the provider keeps listing is not kept forever).
 */
export class RemovalMemory {
  private readonly ids = new Map<string, number>();

  constructor(private readonly ttlMs = 15 * 60_000) {}

  note(fleet: string, ids: readonly string[], nowMs: number): void {
    for (const id of ids) this.ids.set(`${fleet}\u0000${id}`, nowMs);
  }

  has(fleet: string, id: string, nowMs: number): boolean {
    const at = this.ids.get(`${fleet}\u0000${id}`);
    return at !== undefined && nowMs - at < this.ttlMs;
  }

  /** Forgets the fleet's ids a fresh observation no longer lists (and expired ones). */
  prune(fleet: string, listed: ReadonlySet<string>, nowMs: number): void {
    const prefix = `${fleet}\u0000`;
    for (const [key, at] of this.ids) {
      if (nowMs - at >= this.ttlMs) this.ids.delete(key);
      else if (key.startsWith(prefix) && !listed.has(key.slice(prefix.length))) this.ids.delete(key);
    }
  }
}

export interface SyncResult {
  /** The ledger was written: re-read it before planning. */
  changed: boolean;
  /** Instances observed running whose ledger row is still `creating`: to be probed. */
  toProbe: { fleet: string; id: string; created_at: string }[];
  /** Instances the ledger did not know, now recorded as `creating`. */
  adopted: string[];
}

/**
 * One pass of provider truth into the ledger and the scheduler. `fresh` is false when the groups
 * come from the observe cache: then nothing is declared gone and nothing is adopted (a cached view
 * may predate either).
 */
export async function syncInstances(
  observed: ObservedState,
  specs: ReadonlyMap<string, Fleet>,
  fresh: boolean,
  deps: SyncDeps,
): Promise<SyncResult> {
  const result: SyncResult = { changed: false, toProbe: [], adopted: [] };
  const ledgerByFleet = new Map<string, Map<string, LedgerInstance>>();
  for (const row of observed.ledger) {
    const m = ledgerByFleet.get(row.fleet) ?? new Map<string, LedgerInstance>();
    m.set(row.id, row);
    ledgerByFleet.set(row.fleet, m);
  }
  const nowDate = deps.time.now();
  const now = nowDate.toISOString();
  for (const group of observed.groups) {
    const fleet = group.ref.fleet;
    if (!specs.has(fleet) || !group.exists) continue;
    const rows = ledgerByFleet.get(fleet) ?? new Map<string, LedgerInstance>();
    await syncGroup(group, rows, fresh, now, deps, result);
    if (fresh) {
      const listed = new Set(group.instances.filter((i) => i.state !== 'gone').map((i) => i.id));
      deps.removing?.prune(fleet, listed, nowDate.getTime());
      // The scheduler holds only instances the ledger has: one whose row is gone (removed by a
      // step that failed for another instance, or by a retry) leaves, and so do its slots; the
      // slot gauges are counted from what is left, never carried over.
      for (const inst of deps.slots.instances(fleet)) {
        if (!rows.has(inst.id)) deps.slots.removeInstance(fleet, inst.id);
      }
    }
  }
  return result;
}

async function syncGroup(
  group: ObservedGroup,
  rows: Map<string, LedgerInstance>,
  fresh: boolean,
  now: string,
  deps: SyncDeps,
  result: SyncResult,
): Promise<void> {
  const fleet = group.ref.fleet;
  const log = deps.logger.child({ fleet });
  const seen = new Set<string>();
  for (const obs of group.instances) {
    if (obs.state === 'gone') continue;
    seen.add(obs.id);
    const row = rows.get(obs.id);
    if (!row) {
      if (obs.state === 'deleting') continue;
      // A cached observation may predate a removal, and a provider's listing can lag a terminate
      // (its answer may have been lost, too): such an instance is leaving, not new. Only a fresh
      // observation adopts, and never an instance runfleet asked to remove.
      if (!fresh || deps.removing?.has(fleet, obs.id, Date.parse(now))) continue;
      // Never seen: launched by an increase whose outcome was lost, or by someone else. Adopt it,
      // but probe it before it takes a job: nobody knows what state it is in.
      await deps.ledger.insert({
        fleet,
        id: obs.id,
        provider: group.ref.provider,
        state: 'creating',
        created_at: obs.launched_at || now,
        use_count: 0,
        health_failures: 0,
        acquired: 0,
      });
      log.info('instance adopted', { event: 'adopt', instance: obs.id, provider_state: obs.state });
      result.changed = true;
      result.adopted.push(obs.id);
      if (obs.state === 'running')
        result.toProbe.push({ fleet, id: obs.id, created_at: obs.launched_at || now });
      continue;
    }
    if (obs.interrupting && row.state !== 'draining' && row.state !== 'deleting') {
      await drain(deps, row, 'spot');
      log.warn('spot interruption notice: instance drains', {
        event: 'drain',
        instance: obs.id,
        reason: 'spot',
      });
      result.changed = true;
      continue;
    }
    if (row.state === 'creating' && obs.state === 'running') {
      result.toProbe.push({ fleet, id: obs.id, created_at: row.created_at });
    } else if ((row.state === 'ready' || row.state === 'in_use') && obs.state === 'running') {
      // One the heartbeats took out of service stays out after a restart (until removed, or a
      // fixed host's trial brings it back): the ledger's failures say so, the scheduler forgot.
      if (obs.healthy === false || row.health_failures >= UNHEALTHY_AFTER_FAILURES) {
        deps.slots.markUnavailable(fleet, obs.id, 'unhealthy');
      } else deps.slots.addReadyInstance(fleet, obs.id, row.use_count);
    } else if (row.state === 'draining') {
      deps.slots.markUnavailable(fleet, obs.id, (row.drain_reason ?? 'scale_in') as UnavailableReason);
    }
  }
  if (!fresh) return;
  for (const row of rows.values()) {
    if (seen.has(row.id)) continue;
    // Gone at the provider: removed by us (already deleted from the ledger then), reclaimed (spot),
    // or terminated outside runfleet. Jobs on it are lost, never moved to another instance.
    if (row.state !== 'deleting') {
      log.warn('instance vanished at the provider', {
        event: 'vanished',
        instance: row.id,
        ledger_state: row.state,
        acquired: row.acquired,
      });
    }
    deps.slots.removeInstance(fleet, row.id);
    await deps.ledger.remove(fleet, row.id);
    deps.onGone?.(fleet, row);
    result.changed = true;
  }
}

async function drain(deps: SyncDeps, row: LedgerInstance, reason: UnavailableReason): Promise<void> {
  deps.slots.markUnavailable(row.fleet, row.id, reason);
  await deps.ledger.update(row.fleet, row.id, (r) =>
    r.state === 'deleting' ? undefined : { ...r, state: 'draining', drain_reason: reason },
  );
}

/**
 * After a restart: closes every intent the previous run left open. A `decrease` whose instances
 * still exist is carried out (those instances were idle and chosen for removal then); every other
 * action is superseded by the next plan, which sees what really happened (an increase's instances
 * are adopted, so nothing is created twice). Ledger rows that held slots lose them: jobs of a
 * previous process cannot be resumed, and the instance is drained since its state is unknown.
 */
export async function resolveAfterRestart(
  specs: ReadonlyMap<string, Fleet>,
  deps: SyncDeps,
  /** `false` (`runfleet plan`, which changes no instance): open removals stay for apply or watch. */
  opts: { retryRemovals?: boolean } = {},
): Promise<{ intents: number; retried: string[]; drained: string[] }> {
  const out = { intents: 0, retried: [] as string[], drained: [] as string[] };
  const retryRemovals = opts.retryRemovals ?? true;
  const open = await deps.store.listOpenIntents();
  const removals = new Map<string, Set<string>>();
  for (const intent of open) {
    if (intent.action === 'decrease' && !retryRemovals) continue;
    out.intents++;
    if (intent.action === 'decrease' && Array.isArray(intent.detail['ids'])) {
      const set = removals.get(intent.fleet) ?? new Set<string>();
      for (const id of intent.detail['ids'] as unknown[]) if (typeof id === 'string') set.add(id);
      removals.set(intent.fleet, set);
    } else {
      await deps.store.closeIntent(intent.id, 'resolved after restart: superseded by a fresh plan');
    }
  }
  for (const row of await deps.store.listInstances()) {
    if (row.state === 'deleting' && retryRemovals)
      removals.set(row.fleet, (removals.get(row.fleet) ?? new Set()).add(row.id));
    if (row.acquired > 0 && row.state !== 'deleting') {
      await deps.ledger.update(row.fleet, row.id, (r) => ({
        ...r,
        acquired: 0,
        use_count: r.use_count + r.acquired,
        state: 'draining',
        drain_reason: 'unhealthy',
      }));
      deps.logger.warn('instance held jobs when runfleet stopped; draining it', {
        event: 'drain',
        fleet: row.fleet,
        instance: row.id,
        reason: 'unhealthy',
      });
      out.drained.push(row.id);
    }
  }
  for (const [fleet, ids] of removals) {
    const spec = specs.get(fleet);
    if (!spec) continue;
    out.retried.push(...(await retryRemoval(spec, [...ids], deps)));
  }
  for (const intent of open.filter((i) => i.action === 'decrease' && retryRemovals)) {
    await deps.store.closeIntent(intent.id, 'resolved after restart: removal carried out');
  }
  return out;
}

/**
 * Removes instances whose removal was already decided but may not have happened. Only ids the
 * provider still shows are asked for; each attempt is recorded as an intent.
 */
export async function retryRemoval(spec: Fleet, ids: string[], deps: SyncDeps): Promise<string[]> {
  const ref = groupRefFor(spec);
  const provider = deps.providers.forFleet(spec);
  const [group] = await provider.observe([ref]);
  const present = new Set((group?.instances ?? []).filter((i) => i.state !== 'gone').map((i) => i.id));
  const todo = ids.filter((id) => present.has(id));
  for (const id of ids) {
    if (present.has(id)) continue;
    deps.slots.removeInstance(spec.name, id);
    await deps.ledger.remove(spec.name, id);
  }
  if (todo.length === 0) return [];
  deps.removing?.note(spec.name, todo, deps.time.now().getTime());
  const intent = await deps.store.openIntent(spec.name, 'decrease', { ids: todo, retry: true });
  try {
    const removed = await provider.decrease(ref, todo);
    for (const id of removed) {
      deps.slots.removeInstance(spec.name, id);
      await deps.ledger.remove(spec.name, id);
    }
    await deps.store.closeIntent(intent, `removed ${removed.length} instance(s): ${removed.join(', ')}`);
    deps.logger.info('removal retried', { event: 'remove', fleet: spec.name, instances: removed });
    return removed;
  } catch (e) {
    await deps.store.closeIntent(intent, `failed: ${asError(e).message}`);
    deps.onProviderError?.(spec.name, 'remove', e);
    deps.logger.warn('removal retry failed', { fleet: spec.name, error: asError(e).message });
    return [];
  }
}
