/**
 * One reconcile pass: observe → sync the ledger → plan → claim → apply → account. What the daemon
 * knows beyond the fleet files goes into the planner's input as constraints, so the plan is made
 * once and is exactly what is applied and shown (`status`, metrics, history):
 * - the instances running a job now are never removed, and a deleted fleet's group waits for them;
 * - increases are held back during a fleet's readiness backoff, by `scale_throttle`, one at a
 *   time after readiness failures, and while shutting down;
 * - fleets that are manual or held on a last good definition plan capacity only.
 * The plan's removals are then claimed in the slot scheduler in the same turn as planning; a fleet
 * whose plan has an error is left alone by apply (the others go on) and reported once.
 */
import { applyPlan, type ApplyOutcome } from '../apply/apply.js';
import { observeState } from '../apply/observe.js';
import { recordApply } from '../apply/record.js';
import { ErrorCode, FleetError } from '../errors.js';
import type { Fleet } from '../model/fleet.js';
import type { Demand, LedgerInstance, ObservedGroup, ObservedState } from '../model/observed.js';
import type { CapacityPlan, Plan, RemovalReason } from '../model/plan.js';
import { planFleets, type FleetConstraints } from '../plan/index.js';
import type { UnavailableReason } from '../runtime/slots/types.js';
import { scopedStore } from '../store/scoped-store.js';
import type { StateStore } from '../store/store.js';
import { specsByName, type ConfigView } from './fleet-config.js';
import { RemovalMemory, syncInstances, retryRemoval, type SyncDeps } from './instance-sync.js';
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
  /** Fleet name → the errors of its plan (the fleet is left alone while they last). */
  planErrors: Map<string, string[]>;
  observed: ObservedState;
}

export class Reconciler {
  private cache: { groups: ObservedGroup[]; at: number } | undefined;
  private readonly throttle = new CreationThrottle();
  private readonly reportedErrors = new Set<string>();
  /** Instances whose removal was sent: never adopted back from a lagging listing. */
  private readonly removing = new RemovalMemory();

  constructor(private readonly deps: ReconcileDeps) {}

  /** Forces the next pass to ask the providers. */
  invalidate(): void {
    this.cache = undefined;
  }

  async pass(view: ConfigView, trigger: PassTrigger, shuttingDown: boolean): Promise<PassOutcome> {
    const { deps } = this;
    const now = deps.time.now();
    const specs = specsByName(view);
    // The pass sees the fleets of its view and nothing else: a fleet gained while it runs (several
    // managers) waits for the next pass instead of showing up applied but undefined, which would
    // plan its deletion. Writes to a fleet outside the view are refused.
    const known = new Set(view.fleets.map((f) => f.name));
    const store = scopedStore(deps.store, (fleet) => known.has(fleet));
    const applied = await store.listFleets();
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
    const { observed, basis, groupChanges } = await observeState(view.desired, store, deps.providers, {
      demand,
      ...(cached ? { cachedGroups: cached } : {}),
    });
    if (!cached) this.cache = { groups: observed.groups, at: now.getTime() };

    const sync = await syncInstances(observed, everySpec, !cached, this.syncDeps(store));
    if (!cached) await this.retryStuckRemovals(observed, everySpec, store);
    if (sync.changed) observed.ledger = await store.listInstances();

    if (!cached) this.reportOrphans(observed);
    const outcome: PassOutcome = {
      toProbe: sync.toProbe,
      expecting: false,
      decisions: new Map(),
      planErrors: new Map(),
      observed,
    };
    // From here to the claims nothing awaits: the busy view the plan is made with is the one the
    // claims find, so no job can take an instance between being planned out and claimed.
    const holds = new Map<string, 'backoff' | 'throttle'>();
    const constraints = this.constraints(view, everySpec, observed.ledger, shuttingDown, now, holds, outcome);
    const plan = planFleets({ desired: view.desired, observed, now, basis, constraints, groupChanges });
    const work = this.claim(plan, view, everySpec, holds, now.getTime(), outcome);
    outcome.expecting = isExpecting(observed) || sync.toProbe.length > 0;
    if (!work) return outcome;
    for (const fp of plan.fleets) {
      const ids = (fp.capacity?.remove ?? []).map((r) => r.id);
      if (ids.length > 0 && !outcome.planErrors.has(fp.fleet))
        this.removing.note(fp.fleet, ids, now.getTime());
    }

    const started = deps.time.now();
    const result = await applyPlan(plan, view.desired, {
      store,
      ledger: deps.ledger,
      providers: deps.providers,
      time: deps.time,
      skipErroredFleets: true,
    });
    outcome.applied = result;
    outcome.expecting = true;
    this.invalidate();
    await this.account(plan, result, started, observed, everySpec, outcome, store);
    return outcome;
  }

  /**
   * What the daemon adds to the planner's input, per fleet: the instances running a job now,
   * capacity-only fleets, and how many instances may be created now (none while shutting down or
   * during a readiness backoff, one at a time after readiness failures, `scale_throttle`'s tokens).
   */
  private constraints(
    view: ConfigView,
    specs: ReadonlyMap<string, Fleet>,
    ledger: readonly LedgerInstance[],
    shuttingDown: boolean,
    now: Date,
    holds: Map<string, 'backoff' | 'throttle'>,
    outcome: PassOutcome,
  ): Record<string, FleetConstraints> {
    const { deps } = this;
    const nowMs = now.getTime();
    const out: Record<string, FleetConstraints> = {};
    for (const [name, spec] of specs) {
      const busy = new Set(
        deps.slots
          .instances(name)
          .filter((i) => i.acquired > 0)
          .map((i) => i.id),
      );
      const c: FleetConstraints = { busy };
      if (view.capacityOnly.has(name)) c.capacityOnly = true;
      const failures = deps.backoff.failures(name);
      const blocked = deps.backoff.blockedUntil(name, nowMs);
      if (shuttingDown) {
        c.maxIncrease = 0;
        c.increaseNote = 'no new instances while shutting down';
      } else if (blocked !== undefined) {
        c.maxIncrease = 0;
        c.increaseNote = `creation paused after ${failures} readiness failure(s)`;
        holds.set(name, 'backoff');
        outcome.retryAt = Math.min(outcome.retryAt ?? Infinity, blocked);
      } else if (failures > 0 && ledger.some((r) => r.fleet === name && r.state === 'creating')) {
        c.maxIncrease = 0;
        c.increaseNote = 'waiting for the instance on trial after readiness failures';
      } else {
        // Recovering from readiness failures: one new instance at a time until one passes.
        const trial = failures > 0 ? 1 : Infinity;
        const tokens = this.throttle.available(name, spec.scale_throttle, nowMs);
        if (tokens < trial) {
          c.maxIncrease = tokens;
          c.increaseNote = `scale_throttle allows ${tokens} now`;
          holds.set(name, 'throttle');
        } else if (trial < Infinity) {
          c.maxIncrease = trial;
          c.increaseNote = 'one new instance at a time after readiness failures';
        }
      }
      out[name] = c;
    }
    return out;
  }

  /**
   * Takes the plan's removals out of service (and closes deleted fleets) in the slot scheduler;
   * records the decisions for status and metrics. Returns whether there is anything to apply.
   * @throws FleetError(INTERNAL) if a planned removal is busy: the plan was made from a stale view.
   */
  private claim(
    plan: Plan,
    view: ConfigView,
    specs: ReadonlyMap<string, Fleet>,
    holds: ReadonlyMap<string, 'backoff' | 'throttle'>,
    nowMs: number,
    outcome: PassOutcome,
  ): boolean {
    const { deps } = this;
    const desired = new Set(view.desired.map((d) => d.spec.name));
    let work = false;
    for (const fp of plan.fleets) {
      const errors = fp.diagnostics.filter((d) => d.severity === 'error');
      if (errors.length > 0) {
        for (const e of errors) this.reportOnce(fp.fleet, e.message);
        outcome.planErrors.set(
          fp.fleet,
          errors.map((e) => `${e.code}: ${e.message}`),
        );
        continue;
      }
      // A fleet whose file is gone takes no new job, also while its group waits for busy instances.
      if (!desired.has(fp.fleet)) deps.slots.closeFleet(fp.fleet);
      const cap = fp.capacity;
      if (cap) {
        for (const r of cap.remove) {
          if (deps.slots.claimForRemoval(fp.fleet, [r.id], unavailableFor(r.reason)).length === 0) {
            throw new FleetError(
              ErrorCode.INTERNAL,
              `planned to remove ${r.id} of ${fp.fleet}, which runs a job`,
              {
                hint: 'the next pass plans again from a fresh view',
                retryable: true,
              },
            );
          }
        }
        outcome.decisions.set(fp.fleet, cap);
        if ((cap.held ?? 0) > 0 && holds.get(fp.fleet) === 'throttle') {
          const spec = specs.get(fp.fleet);
          const wait = spec ? this.throttle.msUntilNext(fp.fleet, spec.scale_throttle) : 0;
          outcome.retryAt = Math.min(outcome.retryAt ?? Infinity, nowMs + Math.max(1, wait));
        }
      }
      work ||= fp.action !== 'noop' || (cap?.increase ?? 0) > 0 || (cap?.remove.length ?? 0) > 0;
    }
    return work;
  }

  private syncDeps(store: StateStore): SyncDeps {
    const { deps } = this;
    return {
      ...deps,
      store,
      removing: this.removing,
      onGone: (fleet, row) =>
        deps.metrics.lived(fleet, (deps.time.now().getTime() - Date.parse(row.created_at)) / 1000),
    };
  }

  /** Rows stuck in `deleting` while the provider still runs them: a removal that failed. */
  private async retryStuckRemovals(
    observed: ObservedState,
    specs: ReadonlyMap<string, Fleet>,
    store: StateStore,
  ): Promise<void> {
    for (const group of observed.groups) {
      const spec = specs.get(group.ref.fleet);
      if (!spec) continue;
      const running = new Set(group.instances.filter((i) => i.state === 'running').map((i) => i.id));
      const stuck = observed.ledger
        .filter((r) => r.fleet === spec.name && r.state === 'deleting' && running.has(r.id))
        .map((r) => r.id);
      if (stuck.length === 0) continue;
      await retryRemoval(spec, stuck, this.syncDeps(store));
      // The cached observation still lists them running: a demand pass reusing it must not
      // find rows missing and take them for new instances.
      this.invalidate();
    }
  }

  private async account(
    plan: Plan,
    result: ApplyOutcome,
    started: Date,
    observed: ObservedState,
    specs: ReadonlyMap<string, Fleet>,
    outcome: PassOutcome,
    store: StateStore,
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
        if (step.status === 'failed') {
          deps.metrics.missedUpdate(step.fleet);
          deps.onProviderError?.(step.fleet, step.step, step.error ?? step.detail);
        }
        continue;
      }
      log.info(step.detail, { event: step.step });
      if (step.step === 'increase') {
        const spec = specs.get(step.fleet);
        if (spec)
          this.throttle.take(step.fleet, spec.scale_throttle, fp?.capacity?.increase ?? 0, started.getTime());
        deps.metrics.scaled(step.fleet, 'up', fp?.capacity?.increase ?? 0);
        deps.metrics.created(step.fleet, seconds);
        // New instances get probed now, not on the next observe.
        for (const row of await store.listInstances(step.fleet)) {
          if (row.state === 'creating') {
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
      const finished = deps.time.now();
      // Not awaited: the history write must not hold up the next pass (a demand event waits on it).
      void recordApply(store, plan, result, { started, finished, via: 'watch' })
        .then((hash) => deps.metrics.appliedPlan(hash, finished))
        .catch((e: unknown) => deps.logger.error('cannot record apply', { error: String(e) }));
    }
  }

  /** Logs each orphan once: status and metrics show them for as long as they last. */
  private reportOrphans(observed: ObservedState): void {
    const found = [...(observed.diagnostics ?? []), ...observed.groups.flatMap((g) => g.diagnostics)].filter(
      (d) => d.code.startsWith('ORPHAN_'),
    );
    for (const d of found) {
      const key = `\u0000orphan\u0000${d.message}`;
      if (this.reportedErrors.has(key)) continue;
      this.reportedErrors.add(key);
      this.deps.logger.warn('orphan found: runfleet never deletes it', {
        event: 'orphan',
        code: d.code,
        detail: d.message,
      });
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
