/**
 * A saved plan (`plan --out FILE`): the plan plus the fleet specs it was made from, so that
 * `apply FILE` carries out exactly what was shown even if the fleet files changed since (as
 * Terraform's saved plans do). Specs hold secret references only, never secret values.
 */
import { readFile, writeFile, rename } from 'node:fs/promises';
import { ErrorCode, FleetError } from '../errors.js';
import type { DesiredFleet } from '../model/fleet.js';
import { PLAN_FORMAT, type Plan } from '../model/plan.js';

export interface SavedPlan {
  kind: 'runfleet-plan';
  format: typeof PLAN_FORMAT;
  plan: Plan;
  desired: DesiredFleet[];
}

export async function writePlanFile(path: string, plan: Plan, desired: DesiredFleet[]): Promise<void> {
  const saved: SavedPlan = { kind: 'runfleet-plan', format: PLAN_FORMAT, plan, desired };
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(saved, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, path);
}

export async function readPlanFile(path: string): Promise<SavedPlan> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new FleetError(ErrorCode.PLAN_INVALID, `cannot read plan file ${path}: ${(e as Error).message}`, {
      hint: 'write one with: runfleet plan --out FILE',
      cause: e,
    });
  }
  let saved: Partial<SavedPlan>;
  try {
    saved = JSON.parse(text) as Partial<SavedPlan>;
  } catch {
    throw new FleetError(ErrorCode.PLAN_INVALID, `${path} is not a runfleet plan file (not JSON)`, {
      hint: 'write one with: runfleet plan --out FILE (plan --format json prints a plan for reading, not for apply)',
    });
  }
  if (saved.kind !== 'runfleet-plan' || !saved.plan || !Array.isArray(saved.desired)) {
    throw new FleetError(ErrorCode.PLAN_INVALID, `${path} is not a runfleet plan file`, {
      hint: 'write one with: runfleet plan --out FILE',
    });
  }
  if (saved.format !== PLAN_FORMAT || saved.plan.format !== PLAN_FORMAT) {
    throw new FleetError(
      ErrorCode.PLAN_INVALID,
      `${path} has plan format ${String(saved.format)}; this runfleet reads format ${PLAN_FORMAT}`,
      { hint: 'make a new plan with this version of runfleet' },
    );
  }
  return saved as SavedPlan;
}
