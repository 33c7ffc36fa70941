/**
 * The apply history: one record per apply that did something, written the same way by
 * `runfleet apply` and by the daemon's passes, so `runfleet history` reads both alike.
 */
import type { Plan } from '../model/plan.js';
import type { StateStore } from '../store/store.js';
import { hashOf } from '../util/hash.js';
import type { ApplyOutcome } from './apply.js';

/** The hash `history` and `runfleet_last_applied_plan_info` name a plan by. */
export function planHash(plan: Plan): string {
  return hashOf({ fleets: plan.fleets, basis: plan.basis });
}

/**
 * Records `outcome` of `plan`; returns the plan hash. `via` tags every step line with who applied
 * it (`watch`), so history tells reviewed applies from the daemon's own.
 */
export async function recordApply(
  store: StateStore,
  plan: Plan,
  outcome: ApplyOutcome,
  when: { started: Date; finished: Date; via?: string },
): Promise<string> {
  const hash = planHash(plan);
  const suffix = when.via ? ` (${when.via})` : '';
  await store.recordApply({
    started_at: when.started.toISOString(),
    finished_at: when.finished.toISOString(),
    plan_hash: hash,
    result: outcome.result,
    summary: plan.summary,
    steps: outcome.steps.map(
      (s) =>
        `${s.fleet}: ${s.step} ${s.status}: ${s.status === 'failed' ? s.error?.message : s.detail}${suffix}`,
    ),
  });
  return hash;
}
