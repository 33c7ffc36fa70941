/**
 * One reconcile pass: observe → sync the ledger → plan (the shared planner, so `decideCapacity`
 * decides every time) → daemon rules on top of the plan → apply → account. The daemon rules only
 * ever take away from the plan, never add to it:
 * - removals go only to instances the slot scheduler can claim idle at that instant;
 * - increases are held back during a fleet's readiness backoff, by `scale_throttle`, and while
 *   shutting down;
 * - configuration changes are dropped for fleets that are manual or held on a last good definition;
 * - a deleted fleet's group is removed only after its busy instances finished;
 * - a fleet whose plan has an error is skipped (the others go on).
 */
import { applyPlan, type ApplyOutcome } from '../apply/apply.js';
import { observeState } from '../apply/observe.js';
import type { Fleet } from '../model/fleet.js';
import type { Demand, LedgerInstance, ObservedGroup, ObservedState } from '../model/observed.js';
import type { CapacityPlan, FleetPlan, Plan, RemovalReason } from '../model/plan.js';
import { planFleets } from '../plan/index.js';
import type { UnavailableReason } from '../runtime/slots/types.js';
import { hashOf } from '../util/hash.js';
import { specsByName, type ConfigView } from './fleet-config.js';
import { syncInstances, retryRemoval, type SyncDeps } from './instance-sync.js';
import type { DaemonMetrics } from './metrics.js';
import { CreationThrottle } from './creation-throttle.js';
import type { ReadinessBackoff } from './readiness-backoff.js';

export type PassTrigger =
  'start' | 'tick' | 'demand' | 'config' | 'readiness' | 'health' | 'retry' | 'shutdown';

/** The instance-keeping collaborators (as for `syncInstances`), plus the pass's own. */
export interface ReconcileDeps extends Omit<SyncDeps, 'onGone'> {
  metrics: DaemonMetrics;
  backoff: ReadinessBackoff;
  /** A demand-triggered pass reuses a provider observation younger than this. */
  observeMaxAgeMs: number;
}

export interface PassOutcome {
  /** Instances observed running with a `creating` ledger row: the daemon probes them. */
  toProbe: { fleet: string; id: string; created_at: string }[];
  /** Something is in motion (creating/deleting instances): observe again soon. */
  expecting: boolean;
  /** The earliest moment a held-back increase may go ahead (backoff, throttle), epoch ms. */
  retryAt?: number;
  applied?: ApplyOutcome;
  /** Fleet name → last capacity decision (after daemon rules), for status and metrics. */
  decisions: Map<string, CapacityPlan>;
  observed: ObservedState;
}

export class Reconciler {
  private cache: { groups: ObservedGroup[]; at: number } | undefined;
  private readonly throttle = new CreationThrottle();
  private readonly reportedErrors = new Set<string>();

  constructor(private readonly deps: ReconcileDeps) {}

  /** Forces the next pass to ask the providers. */
  invalidate(): void {
    this.cache = undefined;
  }

  async pass(view: ConfigView, trigger: PassTrigger, shuttingDown: boolean): Promise<PassOutcome> {
    const { deps } = this;
    const now = deps.time.now();
    const specs = specsByName(view);
    const applied = await deps.store.listFleets();
    const everySpec = new Map<string, Fleet>(applied.map((a) => [a.name, a.spec]));
    for (const [name, spec] of specs) everySpec.set(name, spec);

    // Reservations are idle slots offered to GitLab, not use: counting them would pin idle
    // capacity (taskscaler MR !60) and let scale_factor feed on itself.
    const demand: Record<string, Demand> = {};
    for (const name of everySpec.keys()) {
      const d = deps.slots.demand(name);
      demand[name] = { acquired: d.acquired, reserved: 0, pending: d.pending };
    }
    const cached =
      trigger === 'demand' && this.cache && now.getTime() - this.cache.at < deps.observeMaxAgeMs
        ? this.cache.groups
        : undefined;
    const { observed, basis } = await observeState(view.desired, deps.store, deps.providers, {
      demand,
      ...(cached ? { cachedGroups: cached } : {}),
    });
    if (!cached) this.cache = { groups: observed.groups, at: now.getTime() };

    const sync = await syncInstances(observed, everySpec, !cached, this.syncDeps());
    if (!cached) await this.retryStuckRemovals(observed, everySpec);
    if (sync.changed) observed.ledger = await deps.store.listInstances();

    const plan = planFleets({ desired: view.desired, observed, now, basis });
    const outcome: PassOutcome = { toProbe: sync.toProbe, expecting: false, decisions: new Map(), observed };
    const work = this.applyDaemonRules(plan, observed.ledger, view, shuttingDown, now.getTime(), outcome);
    outcome.expecting = isExpecting(observed) || sync.toProbe.length > 0;
    if (!work) return outcome;

    const started = deps.time.now();
    const result = await applyPlan(plan, view.desired, {
      store: deps.store,
      providers: deps.providers,
      time: deps.time,
    });
    outcome.applied = result;
    outcome.expecting = true;
    this.invalidate();
    await this.account(plan, result, started, observed, outcome);
    return outcome;
  }

  private syncDeps(): SyncDeps {
    const { deps } = this;
    return {
      ...deps,
      onGone: (fleet, row) =>
        deps.metrics.lived(fleet, (deps.time.now().getTime() - Date.parse(row.created_at)) / 1000),
    };
  }

  /** Rows stuck in `deleting` while the provider still runs them: a removal that failed. */
  private async retryStuckRemovals(
    observed: ObservedState,
    specs: ReadonlyMap<string, Fleet>,
  ): Promise<void> {
    for (const group of observed.groups) {
      const spec = specs.get(group.ref.fleet);
      if (!spec) continue;
      const running = new Set(group.instances.filter((i) => i.state === 'running').map((i) => i.id));
      const stuck = observed.ledger
        .filter((r) => r.fleet === spec.name && r.state === 'deleting' && running.has(r.id))
        .map((r) => r.id);
      if (stuck.length > 0) await retryRemoval(spec, stuck, this.syncDeps());
    }
  }

  /** Edits `plan` in place; returns whether anything is left to apply. */
  private applyDaemonRules(
    plan: Plan,
    ledger: readonly LedgerInstance[],
    view: ConfigView,
    shuttingDown: boolean,
    nowMs: number,
    outcome: PassOutcome,
  ): boolean {
    const { deps } = this;
    const kept: FleetPlan[] = [];
    for (const fp of plan.fleets) {
      const errors = fp.diagnostics.filter((d) => d.severity === 'error');
      if (errors.length > 0) {
        for (const e of errors) this.reportOnce(fp.fleet, e.message);
        continue;
      }
      const closing = fp.action === 'delete';
      if (closing) deps.slots.closeFleet(fp.fleet);
      if (view.capacityOnly.has(fp.fleet) && fp.action !== 'noop') {
        fp.action = 'noop';
        fp.changes = [];
      }
      const cap = fp.capacity;
      if (cap) {
        let busy = 0;
        cap.remove = cap.remove.filter((r) => {
          const ok = deps.slots.claimForRemoval(fp.fleet, [r.id], unavailableFor(r.reason)).length > 0;
          if (!ok) busy++;
          return ok;
        });
        const creating = ledger.filter((r) => r.fleet === fp.fleet && r.state === 'creating').length;
        cap.increase = this.allowedIncrease(fp.fleet, cap, view, shuttingDown, nowMs, outcome, creating);
        if (closing && busy > 0) {
          // The group goes once its busy instances are done; the idle ones go now.
          fp.action = 'noop';
          fp.changes = [];
        }
        outcome.decisions.set(fp.fleet, cap);
      }
      kept.push(fp);
    }
    plan.fleets = kept;
    plan.errored = false;
    plan.summary = {
      add: kept.reduce((n, f) => n + (f.action === 'create' ? 1 : 0) + (f.capacity?.increase ?? 0), 0),
      change: kept.filter((f) => f.action === 'update').length,
      destroy: kept.reduce(
        (n, f) => n + (f.action === 'delete' ? 1 : 0) + (f.capacity?.remove.length ?? 0),
        0,
      ),
    };
    return kept.some(
      (f) => f.action !== 'noop' || (f.capacity?.increase ?? 0) > 0 || (f.capacity?.remove.length ?? 0) > 0,
    );
  }

  private allowedIncrease(
    fleet: string,
    cap: CapacityPlan,
    view: ConfigView,
    shuttingDown: boolean,
    nowMs: number,
    outcome: PassOutcome,
    creating: number,
  ): number {
    if (cap.increase <= 0) return 0;
    if (shuttingDown) return 0;
    const blocked = this.deps.backoff.blockedUntil(fleet, nowMs);
    if (blocked !== undefined) {
      cap.reason += `; creation paused after ${this.deps.backoff.failures(fleet)} readiness failure(s)`;
      outcome.retryAt = Math.min(outcome.retryAt ?? Infinity, blocked);
      return 0;
    }
    const spec = view.desired.find((d) => d.spec.name === fleet)?.spec;
    if (!spec) return 0;
    // Recovering from readiness failures: one new instance at a time until one passes.
    let want = cap.increase;
    if (this.deps.backoff.failures(fleet) > 0) {
      if (creating > 0) {
        cap.reason += '; waiting for the instance on trial after readiness failures';
        return 0;
      }
      want = 1;
    }
    const granted = this.throttle.take(fleet, spec.scale_throttle, want, nowMs);
    if (granted < want) {
      cap.reason += `; scale_throttle allows ${granted} now`;
      outcome.retryAt = Math.min(
        outcome.retryAt ?? Infinity,
        nowMs + Math.max(1, this.throttle.msUntilNext(fleet, spec.scale_throttle)),
      );
    }
    return granted;
  }

  private async account(
    plan: Plan,
    result: ApplyOutcome,
    started: Date,
    observed: ObservedState,
    outcome: PassOutcome,
  ): Promise<void> {
    const { deps } = this;
    const seconds = (deps.time.now().getTime() - started.getTime()) / 1000;
    const launched = new Map(
      observed.groups.flatMap((g) => g.instances.map((i) => [`${g.ref.fleet}\u0000${i.id}`, i.launched_at])),
    );
    for (const step of result.steps) {
      const fp = plan.fleets.find((f) => f.fleet === step.fleet);
      const log = deps.logger.child({ fleet: step.fleet });
      if (step.status !== 'done') {
        log.warn(`${step.step} ${step.status}`, {
          event: step.step,
          detail: step.detail,
          error: step.error?.message,
        });
        if (step.status === 'failed') deps.metrics.missedUpdate(step.fleet);
        continue;
      }
      log.info(step.detail, { event: step.step });
      if (step.step === 'increase') {
        deps.metrics.scaled(step.fleet, 'up', fp?.capacity?.increase ?? 0);
        deps.metrics.created(step.fleet, seconds);
        // New instances take jobs (or get probed) now, not on the next observe.
        for (const row of await deps.store.listInstances(step.fleet)) {
          if (row.state === 'ready') {
            deps.slots.addReadyInstance(step.fleet, row.id, row.use_count);
            // Made ready by the apply itself (running, heartbeat passed, no ready command).
            const created = Date.parse(row.created_at);
            if (row.ready_at && created >= started.getTime() - 1000) {
              const toReady = (Date.parse(row.ready_at) - created) / 1000;
              deps.metrics.running(step.fleet, toReady);
              deps.metrics.ready(step.fleet, toReady);
            }
          } else if (row.state === 'creating') {
            outcome.toProbe.push({ fleet: step.fleet, id: row.id, created_at: row.created_at });
          }
        }
      } else if (step.step === 'remove') {
        const removals = fp?.capacity?.remove ?? [];
        deps.metrics.scaled(step.fleet, 'down', removals.length);
        deps.metrics.deleted(step.fleet, seconds);
        for (const r of removals) {
          deps.slots.removeInstance(step.fleet, r.id);
          deps.metrics.removed(step.fleet, r.reason);
          const at = launched.get(`${step.fleet}\u0000${r.id}`);
          if (at) deps.metrics.lived(step.fleet, (deps.time.now().getTime() - Date.parse(at)) / 1000);
        }
      } else if (step.step === 'delete-group') {
        deps.slots.dropFleet(step.fleet);
      }
    }
    if (result.result !== 'noop') {
      const hash = hashOf({ fleets: plan.fleets, basis: plan.basis });
      deps.metrics.appliedPlan(hash, deps.time.now());
      void deps.store
        .recordApply({
          started_at: started.toISOString(),
          finished_at: deps.time.now().toISOString(),
          plan_hash: hash,
          result: result.result,
          summary: plan.summary,
          steps: result.steps.map(
            (s) =>
              `${s.fleet}: ${s.step} ${s.status}: ${s.status === 'failed' ? s.error?.message : s.detail} (watch)`,
          ),
        })
        .catch((e: unknown) => deps.logger.error('cannot record apply', { error: String(e) }));
    }
  }

  private reportOnce(fleet: string, message: string): void {
    const key = `${fleet}\u0000${message}`;
    if (this.reportedErrors.has(key)) return;
    this.reportedErrors.add(key);
    this.deps.logger.error('fleet skipped: its plan has an error', { fleet, error: message });
  }
}

function isExpecting(observed: ObservedState): boolean {
  return (
    observed.groups.some((g) => g.instances.some((i) => i.state === 'creating' || i.state === 'deleting')) ||
    observed.ledger.some((r) => r.state === 'creating' || r.state === 'deleting')
  );
}

function unavailableFor(reason: RemovalReason): UnavailableReason {
  switch (reason) {
    case 'max_use_count':
    case 'unhealthy':
    case 'spot':
    case 'idle_time':
    case 'fleet_deleted':
      return reason;
    default:
      return 'scale_in';
  }
}
