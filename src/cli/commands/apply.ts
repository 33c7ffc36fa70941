import { applyPlan, type ApplyOutcome, type StepResult } from '../../apply/apply.js';
import { recordApply } from '../../apply/record.js';
import { readPlanFile } from '../../apply/plan-file.js';
import { observeState } from '../../apply/observe.js';
import { describeLeftovers, resolveLeftovers } from '../../daemon/leftovers.js';
import { ErrorCode, FleetError, isFleetError } from '../../errors.js';
import { readFile } from 'node:fs/promises';
import { watchFilePath, type WatchFile } from '../root.js';
import type { DesiredFleet } from '../../model/fleet.js';
import type { Plan } from '../../model/plan.js';
import { planFleets, renderPlan } from '../../plan/index.js';
import { openContext, type Context, type ContextOptions, type GlobalOptions } from '../root.js';
import { styler, type Io } from '../io.js';
import { loadDesired } from './load.js';
import { cliStateLock, hasChanges } from './plan.js';

export interface ApplyOptions {
  planFile?: string;
  autoApprove: boolean;
}

/**
 * `runfleet apply [PLAN_FILE]`. Without a file: plan, show, confirm, apply. With a file: apply
 * exactly that plan, refusing it if the observed state moved since it was made. Holds the state
 * lock from observing to the last step, so nothing changes underneath.
 */
export async function apply(
  opts: GlobalOptions,
  applyOpts: ApplyOptions,
  io: Io,
  /** Test seam (crash tests inject a provider that dies at a chosen step); the CLI passes none. */
  load: ContextOptions = {},
): Promise<number> {
  const saved = applyOpts.planFile ? await readPlanFile(applyOpts.planFile) : undefined;
  const desired = saved ? saved.desired : await loadDesired(opts.dir, io);
  const ctx = await openContext(
    opts,
    desired.map((d) => d.spec),
    load,
  );
  try {
    const lock = cliStateLock(ctx, 'apply', io);
    try {
      await lock.take();
    } catch (e) {
      // A running daemon holds the state: a reviewed apply goes through it rather than around it.
      const daemon =
        isFleetError(e) && e.code === ErrorCode.LOCKED ? await runningDaemon(ctx, opts) : undefined;
      if (!daemon) throw e;
      if (saved) {
        throw new FleetError(
          ErrorCode.LOCKED,
          `runfleet watch (${daemon}) holds the state; a saved plan cannot be applied while it runs`,
          {
            hint: 'run runfleet apply without a plan file (the daemon applies the reviewed fleet files), or stop the daemon first',
          },
        );
      }
      return await applyThroughDaemon(ctx, desired, daemon, applyOpts, io);
    }
    try {
      return await applyLocked(ctx, desired, saved?.plan, applyOpts, io);
    } finally {
      await lock.release();
    }
  } finally {
    await ctx.close();
  }
}

async function applyLocked(
  ctx: Context,
  desired: DesiredFleet[],
  savedPlan: Plan | undefined,
  applyOpts: ApplyOptions,
  io: Io,
): Promise<number> {
  const started = ctx.time.now();
  // Under the lock, before planning: what a killed apply or daemon left is resolved as watch does.
  const resolved = await resolveLeftovers(
    desired,
    await observeState(desired, ctx.store, ctx.providers),
    ctx,
    { retryRemovals: true },
  );
  const said = describeLeftovers(resolved.leftovers);
  if (said) io.err(said);
  const { observed, basis, groupChanges } = resolved.seen;
  let plan: Plan;
  if (savedPlan) {
    if (savedPlan.basis.observed !== basis.observed) {
      throw new FleetError(
        ErrorCode.PLAN_STALE,
        `Saved plan is stale: the fleets' observed state changed since the plan was made at ${savedPlan.createdAt}`,
        { hint: 'run runfleet plan --out FILE again, review it, and apply the new file' },
      );
    }
    plan = savedPlan;
  } else {
    plan = planFleets({ desired, observed, now: started, basis, groupChanges });
  }

  io.out(renderPlan(plan, { format: 'text', color: io.color }));
  if (plan.errored) return 1;
  if (!hasChanges(plan)) return 0;

  if (!savedPlan && !(await confirmed(applyOpts, io))) return 1;

  io.out('');
  const style = styler(io.color);
  const outcome = await applyPlan(plan, desired, {
    store: ctx.store,
    ledger: ctx.ledger,
    providers: ctx.providers,
    time: ctx.time,
    onStep: (s) => io.out(formatStep(s, style)),
    // Like Terraform, wait for a group's instances to finish terminating before deleting it.
    deletionWait: {
      timeoutMs: 10 * 60_000,
      pollMs: 5000,
      onWait: (message) => io.out(style.dim(`  ${message}...`)),
    },
  });
  await recordApply(ctx.store, plan, outcome, { started, finished: ctx.time.now() });
  return report(outcome, plan, io, style);
}

function formatStep(s: StepResult, style: ReturnType<typeof styler>): string {
  const head = `fleet.${s.fleet}: ${s.step}`;
  switch (s.status) {
    case 'done':
      return `${head}: ${s.detail}`;
    case 'skipped':
      return style.yellow(`${head}: skipped (${s.detail}) after an earlier failure`);
    case 'failed':
      return (
        style.red(`${head}: FAILED: ${s.detail}: ${s.error?.message ?? 'unknown error'}`) +
        (s.error?.hint ? `\n  hint: ${s.error.hint}` : '')
      );
  }
}

function report(outcome: ApplyOutcome, plan: Plan, io: Io, style: ReturnType<typeof styler>): number {
  const s = plan.summary;
  if (outcome.result === 'success' || outcome.result === 'noop') {
    io.out(
      style.green(
        style.bold(`\nApply complete! ${s.add} added, ${s.change} changed, ${s.destroy} destroyed.`),
      ),
    );
    return 0;
  }
  const count = (st: string) => outcome.steps.filter((x) => x.status === st).length;
  io.err(
    style.red(
      `\nApply ${outcome.result === 'partial' ? 'partly failed' : 'failed'}: ${count('done')} step(s) done, ` +
        `${count('failed')} failed, ${count('skipped')} skipped.`,
    ) + '\nWhat was done is recorded in the state; run `runfleet apply` again to converge the rest.',
  );
  return 1;
}

/** Terraform's confirmation: only `yes` approves; without a terminal, only --auto-approve does. */
async function confirmed(applyOpts: ApplyOptions, io: Io): Promise<boolean> {
  if (applyOpts.autoApprove) return true;
  if (!io.interactive) {
    throw new FleetError(
      ErrorCode.APPLY_ABORTED,
      'refusing to apply without confirmation: stdin is not a terminal',
      {
        hint: 'review the plan above and re-run with --auto-approve, or apply a saved plan file',
      },
    );
  }
  io.out("\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n");
  const answer = (await io.prompt('  Enter a value: ')).trim();
  if (answer !== 'yes') io.out('\nApply cancelled.');
  return answer === 'yes';
}

/** The address of the `runfleet watch` holding this state's lock, if it answers. */
async function runningDaemon(ctx: Context, opts: GlobalOptions): Promise<string | undefined> {
  const lock = await ctx.store.currentLock();
  if (lock?.operation !== 'watch') return undefined;
  try {
    const info = JSON.parse(await readFile(watchFilePath(opts.state), 'utf8')) as WatchFile;
    const res = await fetch(`http://${info.listen}/healthz`, { signal: AbortSignal.timeout(2000) });
    return res.ok ? info.listen : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `apply` while `runfleet watch` runs: the plan is made read-only and shown as usual; once
 * confirmed, each `apply: manual` fleet with configuration changes is approved on the daemon, which
 * applies it under its own lock. Fleets with `apply: auto` are the daemon's to converge already.
 */
async function applyThroughDaemon(
  ctx: Context,
  desired: DesiredFleet[],
  address: string,
  applyOpts: ApplyOptions,
  io: Io,
): Promise<number> {
  const { observed, basis, groupChanges } = await observeState(desired, ctx.store, ctx.providers);
  const plan = planFleets({ desired, observed, now: ctx.time.now(), basis, groupChanges });
  io.out(renderPlan(plan, { format: 'text', color: io.color }));
  if (plan.errored) return 1;
  const specs = new Map(desired.map((d) => [d.spec.name, d.spec]));
  const manual = plan.fleets.filter(
    (f) => (f.action === 'create' || f.action === 'update') && specs.get(f.fleet)?.apply === 'manual',
  );
  io.out(`\nrunfleet watch is running (http://${address}); it converges fleets with apply: auto on its own.`);
  if (manual.length === 0) {
    io.out('No apply: manual fleet has configuration changes to approve.');
    return 0;
  }
  io.out(`Approving on the daemon: ${manual.map((f) => f.fleet).join(', ')}`);
  if (!(await confirmed(applyOpts, io))) return 1;
  let failed = 0;
  for (const f of manual) {
    const res = await fetch(`http://${address}/v1/fleets/${f.fleet}/approve`, {
      method: 'POST',
      signal: AbortSignal.timeout(5000),
    }).catch((e: unknown) => ({ ok: false, status: 0, text: async () => String(e) }));
    if (res.ok) io.out(`fleet.${f.fleet}: approved; the daemon applies it now (see runfleet status)`);
    else {
      failed++;
      io.err(`fleet.${f.fleet}: the daemon refused the approval (${res.status}): ${await res.text()}`);
    }
  }
  return failed === 0 ? 0 : 1;
}
