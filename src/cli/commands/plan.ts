import { writePlanFile } from '../../apply/plan-file.js';
import { observeState } from '../../apply/observe.js';
import { planFleets, renderPlan } from '../../plan/index.js';
import type { Plan } from '../../model/plan.js';
import { openContext, type GlobalOptions } from '../root.js';
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
    const { observed, basis, groupChanges } = await observeState(desired, ctx.store, ctx.providers);
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
