/**
 * Carries out a plan through the providers, step by step. Each mutating step is recorded in the
 * store as an intent before the provider call and closed with its outcome after it, so a crash in
 * the middle leaves a trail the daemon can reconcile. A failed step stops the remaining steps of
 * that fleet only; other fleets go on. Running the same plan's intent again converges, because
 * every provider call is idempotent and a fresh plan only asks for what is still missing.
 */
import { ErrorCode, FleetError, asError, isFleetError } from '../errors.js';
import type { DesiredFleet, Fleet } from '../model/fleet.js';
import { groupRefFor } from '../model/group.js';
import type { AppliedFleet, GroupRef, LedgerInstance } from '../model/observed.js';
import type { FleetPlan, Plan } from '../model/plan.js';
import type { Provider } from '../providers/provider.js';
import type { ProviderRegistry } from '../providers/registry.js';
import type { LedgerWriter } from '../store/ledger-writer.js';
import type { StateStore } from '../store/store.js';
import type { Time } from '../util/time.js';
import { hashOf } from '../util/hash.js';

export type StepStatus = 'done' | 'failed' | 'skipped';

export interface StepResult {
  fleet: string;
  /** `configure`, `remove`, `increase`, `delete-group` */
  step: string;
  status: StepStatus;
  /** What was done or attempted, for humans; never secrets. */
  detail: string;
  error?: FleetError;
}

export interface ApplyOutcome {
  result: 'success' | 'partial' | 'failed' | 'noop';
  steps: StepResult[];
}

export interface ApplyDeps {
  store: StateStore;
  /** The one write path of ledger rows (shared with the slot scheduler in the daemon). */
  ledger: LedgerWriter;
  providers: ProviderRegistry;
  time: Time;
  /**
   * Carry out the fleets whose plans have no error and leave the others as they are (the daemon:
   * one broken fleet file must not hold back the rest). Without it a plan with errors is refused.
   */
  skipErroredFleets?: boolean;
  /** Called as each step finishes, so the CLI can report progress live. */
  onStep?: (step: StepResult) => void;
  signal?: AbortSignal;
  /**
   * How long a group deletion may wait for its instances to finish terminating (a provider answers
   * that with a retryable error), polling every `pollMs`. 0, the default, does not wait: the daemon
   * retries on its next pass instead of blocking one. The CLI waits, as Terraform does.
   */
  deletionWait?: {
    timeoutMs: number;
    pollMs: number;
    onWait?: (message: string) => void;
  };
}

interface Step {
  name: string;
  describe: string;
  run: () => Promise<string>;
}

/** Applies `plan`; `desired` must hold the specs of every fleet the plan creates or updates. */
export async function applyPlan(plan: Plan, desired: DesiredFleet[], deps: ApplyDeps): Promise<ApplyOutcome> {
  if (plan.errored && !deps.skipErroredFleets) {
    throw new FleetError(ErrorCode.APPLY_ABORTED, 'the plan has errors and cannot be applied', {
      hint: 'fix the errors that plan shows, then plan again',
    });
  }
  const specs = new Map(desired.map((d) => [d.spec.name, d.spec]));
  const applied = new Map((await deps.store.listFleets()).map((f) => [f.name, f]));
  const results: StepResult[] = [];

  for (const fleetPlan of plan.fleets) {
    if (fleetPlan.diagnostics.some((d) => d.severity === 'error')) continue;
    const steps = stepsFor(fleetPlan, specs.get(fleetPlan.fleet), applied.get(fleetPlan.fleet), deps);
    let failed = false;
    for (const step of steps) {
      let result: StepResult;
      if (failed) {
        result = { fleet: fleetPlan.fleet, step: step.name, status: 'skipped', detail: step.describe };
      } else {
        try {
          const detail = await step.run();
          result = { fleet: fleetPlan.fleet, step: step.name, status: 'done', detail };
        } catch (e) {
          failed = true;
          const error = isFleetError(e)
            ? e
            : new FleetError(ErrorCode.PROVIDER, asError(e).message, { cause: e });
          result = {
            fleet: fleetPlan.fleet,
            step: step.name,
            status: 'failed',
            detail: step.describe,
            error,
          };
        }
      }
      results.push(result);
      deps.onStep?.(result);
    }
  }

  const failedCount = results.filter((r) => r.status === 'failed').length;
  const doneCount = results.filter((r) => r.status === 'done').length;
  const result =
    results.length === 0 ? 'noop' : failedCount === 0 ? 'success' : doneCount === 0 ? 'failed' : 'partial';
  return { result, steps: results };
}

function stepsFor(
  fp: FleetPlan,
  spec: Fleet | undefined,
  applied: AppliedFleet | undefined,
  deps: ApplyDeps,
): Step[] {
  const fleetSpec = spec ?? applied?.spec;
  if (!fleetSpec) {
    throw new FleetError(
      ErrorCode.PLAN_INVALID,
      `the plan names fleet ${fp.fleet} but holds no spec for it`,
      {
        hint: 'make a new plan',
      },
    );
  }
  const provider = deps.providers.forFleet(fleetSpec);
  const ref = groupRefFor(fleetSpec);
  const steps: Step[] = [];

  if (fp.action === 'create' || fp.action === 'update') {
    if (!spec) {
      throw new FleetError(
        ErrorCode.PLAN_INVALID,
        `the plan ${fp.action}s fleet ${fp.fleet} but holds no spec`,
        {
          hint: 'make a new plan',
        },
      );
    }
    steps.push({
      name: 'configure',
      describe: `${fp.action === 'create' ? 'set up' : 'update'} ${ref.provider} group ${ref.name}`,
      run: () =>
        withIntent(deps, fp.fleet, 'configure', { group: ref.name }, async () => {
          await provider.applyGroup(spec, deps.signal);
          await deps.store.putFleet({
            name: spec.name,
            spec,
            hash: hashOf(spec),
            applied_at: deps.time.now().toISOString(),
          });
          return `${fp.action === 'create' ? 'set up' : 'updated'} ${ref.provider} group ${ref.name}`;
        }),
    });
  }

  const removals = fp.capacity?.remove ?? [];
  if (removals.length > 0) {
    const ids = removals.map((r) => r.id);
    steps.push({
      name: 'remove',
      describe: `remove ${ids.length} instance(s): ${ids.join(', ')}`,
      run: () =>
        withIntent(deps, fp.fleet, 'decrease', { ids }, () => removeInstances(deps, provider, ref, ids)),
    });
  }

  const increase = fp.capacity?.increase ?? 0;
  if (increase > 0 && fp.action !== 'delete') {
    steps.push({
      name: 'increase',
      describe: `request ${increase} instance(s)`,
      run: () =>
        withIntent(deps, fp.fleet, 'increase', { n: increase }, () =>
          increaseInstances(deps, provider, ref, increase),
        ),
    });
  }

  if (fp.action === 'delete') {
    steps.push({
      name: 'delete-group',
      describe: `delete ${ref.provider} group ${ref.name}`,
      run: () =>
        withIntent(deps, fp.fleet, 'delete-group', { group: ref.name }, async () => {
          await deleteGroupWaiting(deps, () => provider.deleteGroup(ref, applied?.spec, deps.signal));
          for (const row of await deps.store.listInstances(fp.fleet))
            await deps.ledger.remove(fp.fleet, row.id);
          await deps.store.deleteFleet(fp.fleet);
          return `deleted ${ref.provider} group ${ref.name}`;
        }),
    });
  }
  return steps;
}

async function withIntent(
  deps: ApplyDeps,
  fleet: string,
  action: string,
  detail: Record<string, unknown>,
  fn: () => Promise<string>,
): Promise<string> {
  const id = await deps.store.openIntent(fleet, action, detail);
  try {
    const outcome = await fn();
    await deps.store.closeIntent(id, outcome);
    return outcome;
  } catch (e) {
    await deps.store.closeIntent(id, `failed: ${asError(e).message}`);
    throw e;
  }
}

async function removeInstances(
  deps: ApplyDeps,
  provider: Provider,
  ref: GroupRef,
  ids: string[],
): Promise<string> {
  for (const id of ids) await deps.ledger.update(ref.fleet, id, (row) => ({ ...row, state: 'deleting' }));
  const removed = await provider.decrease(ref, ids, deps.signal);
  for (const id of removed) await deps.ledger.remove(ref.fleet, id);
  const missing = ids.filter((id) => !removed.includes(id));
  if (missing.length > 0) {
    throw new FleetError(ErrorCode.PROVIDER, `the provider did not remove ${missing.join(', ')}`, {
      hint: 'run apply again; removal is safe to retry',
      retryable: true,
    });
  }
  return `removed ${removed.length} instance(s): ${removed.join(', ')}`;
}

async function increaseInstances(
  deps: ApplyDeps,
  provider: Provider,
  ref: GroupRef,
  n: number,
): Promise<string> {
  const requested = await provider.increase(ref, n, deps.signal);
  // Record the instances that are already visible, so the ledger knows them from their first moment.
  // Instances that appear later (an ASG launching) are adopted by the next observe.
  const [group] = await provider.observe([ref], deps.signal);
  const known = new Set((await deps.store.listInstances(ref.fleet)).map((i) => i.id));
  const now = deps.time.now().toISOString();
  const added: string[] = [];
  for (const inst of group?.instances ?? []) {
    if (known.has(inst.id) || inst.state === 'deleting' || inst.state === 'gone') continue;
    // `creating` until the daemon's readiness check has connected to it (and run
    // instance_ready_command): a heartbeat alone does not prove it takes commands.
    const row: LedgerInstance = {
      fleet: ref.fleet,
      id: inst.id,
      provider: ref.provider,
      state: 'creating',
      created_at: inst.launched_at ?? now,
      use_count: 0,
      health_failures: 0,
      acquired: 0,
    };
    await deps.ledger.insert(row);
    added.push(inst.id);
  }
  const shown = added.length > 0 ? `: ${added.join(', ')}` : '';
  return `requested ${requested} instance(s)${shown}`;
}

/** Deletes a group, waiting out retryable refusals (instances still terminating) up to the limit. */
async function deleteGroupWaiting(deps: ApplyDeps, remove: () => Promise<void>): Promise<void> {
  const wait = deps.deletionWait;
  const deadline = deps.time.now().getTime() + (wait?.timeoutMs ?? 0);
  for (;;) {
    try {
      await remove();
      return;
    } catch (e) {
      const retry =
        wait && isFleetError(e) && e.retryable && deps.time.now().getTime() + wait.pollMs <= deadline;
      if (!retry) throw e;
      wait.onWait?.(`${(e as Error).message}; waiting`);
      await deps.time.sleep(wait.pollMs, deps.signal);
    }
  }
}
