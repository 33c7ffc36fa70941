import { writePlanFile } from '../../apply/plan-file.js';
import { observeState, type ObserveResult } from '../../apply/observe.js';
import { StateLock } from '../../apply/state-lock.js';
import { describeLeftovers, resolveLeftovers } from '../../daemon/leftovers.js';
import { ErrorCode, isFleetError } from '../../errors.js';
import type { DesiredFleet } from '../../model/fleet.js';
import { planFleets, renderPlan } from '../../plan/index.js';
import type { Plan } from '../../model/plan.js';
import { openContext, type Context, type GlobalOptions } from '../root.js';
import type { Io } from '../io.js';
import { loadDesired } from './load.js';

export interface PlanOptions {
  out?: string;
  format: 'text' | 'markdown' | 'json';
  detailedExitcode: boolean;
}

export function hasChanges(plan: Plan): boolean {
  const s = plan.summary;
  return s.add + s.change + s.destroy > 0 || plan.fleets.some((f) => f.action !== 'noop');
}

/**
 * `runfleet plan`: what apply would do, rendered like Terraform. Exit 0 on success; with
 * --detailed-exitcode 0 = no changes, 1 = error, 2 = changes.
 */
export async function plan(opts: GlobalOptions, planOpts: PlanOptions, io: Io): Promise<number> {
  const desired = await loadDesired(opts.dir, io);
  const ctx = await openContext(
    opts,
    desired.map((d) => d.spec),
  );
  try {
    const { observed, basis, groupChanges } = await observeResolved(ctx, desired, io);
    const result = planFleets({ desired, observed, now: ctx.time.now(), basis, groupChanges });
    io.out(renderPlan(result, { format: planOpts.format, color: io.color && planOpts.format === 'text' }));
    if (planOpts.out) {
      await writePlanFile(planOpts.out, result, desired);
      if (planOpts.format === 'text') {
        io.out(
          `\nSaved the plan to: ${planOpts.out}\n\nTo perform exactly these actions, run:\n    runfleet apply ${planOpts.out}`,
        );
      }
    }
    if (result.errored) return 1;
    return planOpts.detailedExitcode && hasChanges(result) ? 2 : 0;
  } finally {
    await ctx.close();
  }
}

/**
 * A plan made beside what a killed apply or daemon left in flight would be wrong, so plan resolves
 * it first, as apply and watch do, but changes no instance (interrupted removals stay for apply).
 * When a live process holds the lock, that process resolves it: plan only observes.
 */
async function observeResolved(ctx: Context, desired: DesiredFleet[], io: Io): Promise<ObserveResult> {
  const lock = cliStateLock(ctx, 'plan', io);
  try {
    await lock.take();
  } catch (e) {
    if (isFleetError(e) && e.code === ErrorCode.LOCKED) {
      return observeState(desired, ctx.store, ctx.providers);
    }
    throw e;
  }
  try {
    const seen = await observeState(desired, ctx.store, ctx.providers);
    const resolved = await resolveLeftovers(desired, seen, ctx, { retryRemovals: false });
    const said = describeLeftovers(resolved.leftovers);
    if (said) io.err(said);
    return resolved.seen;
  } finally {
    await lock.release();
  }
}

/** The state lock as plan and apply take it: taking over a dead holder's lock is said to the user. */
export function cliStateLock(ctx: Context, operation: 'plan' | 'apply', io: Io): StateLock {
  return new StateLock({
    store: ctx.store,
    operation,
    onTakeOver: (previous) =>
      io.err(`Taking over the state lock of ${previous.who} (${previous.operation}), which is gone.`),
  });
}
