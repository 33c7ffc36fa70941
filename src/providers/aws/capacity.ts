/**
 * Capacity actions, as GitLab's AWS fleeting plugin maps them: `increase` → SetDesiredCapacity
 * (current + n, capped at MaxSize), `decrease` → TerminateInstanceInAutoScalingGroup with
 * ShouldDecrementDesiredCapacity, one instance at a time. The decrement is skipped while the group's
 * desired capacity is already below its live instances: lowering MaxSize under the desired
 * capacity lowers it implicitly (UpdateAutoScalingGroup) while protected instances stay, and
 * decrementing again would count those removals twice, ending in "would violate group's min size".
 *
 * Retry safety:
 * - `increase` reads the current desired capacity and sets an absolute value, so the retry layer
 *   may resend the same SetDesiredCapacity freely. Re-running `increase` itself after an unknown
 *   outcome would add n again: the caller's intent log must reconcile with `observe` first. Between
 *   the read and the write another writer can change the desired capacity (the race is inherent in
 *   the API; runfleet assumes it is the group's only writer, which the ownership tags enforce).
 * - `decrease` first reads where each id is (DescribeAutoScalingInstances): ids in no group are
 *   already gone and count as removed, ids already Terminating are not terminated twice (which
 *   would decrement the desired capacity twice), ids in another group are never touched. A 5xx or
 *   network error on a terminate is not retried blindly; a later `decrease` re-reads first.
 */
import {
  paginateDescribeAutoScalingInstances,
  SetDesiredCapacityCommand,
  TerminateInstanceInAutoScalingGroupCommand,
  type AutoScalingClient,
  type AutoScalingInstanceDetails,
} from '@aws-sdk/client-auto-scaling';
import { ErrorCode, FleetError, asError } from '../../errors.js';
import type { GroupRef } from '../../model/observed.js';
import { allPages, callAws, chunks, pagingClient, type AwsContext } from './context.js';
import { isNotFound } from './errors.js';
import { instanceState, ownershipConflict } from './map.js';
import { describeGroups } from './observe.js';

/** DescribeAutoScalingInstances takes at most 50 ids per call. */
const IDS_PER_DESCRIBE = 50;

export async function increaseAwsGroup(
  ctx: AwsContext,
  ref: GroupRef,
  n: number,
  signal?: AbortSignal,
): Promise<number> {
  if (n <= 0) return 0;
  const g = (await describeGroups(ctx, [ref.name], signal)).get(ref.name);
  if (!g) {
    throw new FleetError(ErrorCode.PROVIDER, `Auto Scaling group ${ref.name} does not exist`, {
      hint: 'run `runfleet apply` to create or adopt the group first',
    });
  }
  const [conflict] = ownershipConflict(ref, g, ctx.manager);
  if (conflict) throw new FleetError(ErrorCode.PROVIDER, conflict.message, { hint: conflict.hint });
  const current = g.DesiredCapacity ?? 0;
  const target = Math.min(g.MaxSize ?? current + n, current + n);
  if (target <= current) return 0;
  await callAws(
    ctx,
    'autoscaling',
    new SetDesiredCapacityCommand({
      AutoScalingGroupName: ref.name,
      DesiredCapacity: target,
      HonorCooldown: false,
    }),
    { signal },
  );
  return target - current;
}

async function whereAre(
  ctx: AwsContext,
  ids: string[],
  signal?: AbortSignal,
): Promise<Map<string, AutoScalingInstanceDetails>> {
  const found = new Map<string, AutoScalingInstanceDetails>();
  const client = pagingClient<AutoScalingClient>(ctx, 'autoscaling');
  for (const chunk of chunks(ids, IDS_PER_DESCRIBE)) {
    const pages = paginateDescribeAutoScalingInstances(
      { client, pageSize: IDS_PER_DESCRIBE },
      { InstanceIds: chunk },
      { abortSignal: signal },
    );
    for (const d of await allPages(pages, (p) => p.AutoScalingInstances))
      if (d.InstanceId) found.set(d.InstanceId, d);
  }
  return found;
}

/** The group's desired capacity and its instances that count toward it (Pending or InService). */
async function liveCapacity(
  ctx: AwsContext,
  ref: GroupRef,
  signal?: AbortSignal,
): Promise<{ desired: number; live: number } | undefined> {
  const g = (await describeGroups(ctx, [ref.name], signal)).get(ref.name);
  if (!g) return undefined;
  const live = (g.Instances ?? []).filter((i) => {
    const state = instanceState(i.LifecycleState);
    return state === 'creating' || state === 'running';
  }).length;
  return { desired: g.DesiredCapacity ?? 0, live };
}

/**
 * Terminates exactly these instances of `ref`'s group and returns the ids that are now removed
 * (including ones that were already gone or terminating). When some fail, the others are still
 * returned and the failed ids are missing from the result, so the caller sees the partial outcome;
 * when none could be removed, the first failure is thrown.
 */
export async function decreaseAwsGroup(
  ctx: AwsContext,
  ref: GroupRef,
  ids: string[],
  signal?: AbortSignal,
): Promise<string[]> {
  const unique = [...new Set(ids)];
  if (unique.length === 0) return [];
  const where = await whereAre(ctx, unique, signal);
  const capacity = unique.some((id) => {
    const d = where.get(id);
    return d?.AutoScalingGroupName === ref.name && !d.LifecycleState?.startsWith('Terminat');
  })
    ? await liveCapacity(ctx, ref, signal)
    : undefined;
  const removed: string[] = [];
  const failures: FleetError[] = [];
  for (const id of unique) {
    const d = where.get(id);
    if (!d) {
      removed.push(id);
      continue;
    }
    if (d.AutoScalingGroupName !== ref.name) {
      failures.push(
        new FleetError(
          ErrorCode.PROVIDER,
          `instance ${id} belongs to ${d.AutoScalingGroupName}, not ${ref.name}`,
          {
            hint: "runfleet only removes instances of the fleet's own group; this id was not touched",
          },
        ),
      );
      continue;
    }
    if (d.LifecycleState?.startsWith('Terminat')) {
      removed.push(id);
      continue;
    }
    // Desired ≥ live: the removal must lower the desired capacity, or the group launches a
    // replacement. Desired < live: it is lowered already; terminating alone converges.
    const decrement = !capacity || capacity.desired >= capacity.live;
    try {
      await callAws(
        ctx,
        'autoscaling',
        new TerminateInstanceInAutoScalingGroupCommand({
          InstanceId: id,
          ShouldDecrementDesiredCapacity: decrement,
        }),
        { signal, retryAmbiguous: false },
      );
      removed.push(id);
      if (capacity) {
        capacity.live--;
        if (decrement) capacity.desired--;
      }
    } catch (e) {
      if (isNotFound(e)) removed.push(id);
      else if (signal?.aborted) throw e;
      else
        failures.push(
          e instanceof FleetError ? e : new FleetError(ErrorCode.PROVIDER, asError(e).message, { cause: e }),
        );
    }
  }
  const [first] = failures;
  if (first && removed.length === 0) throw first;
  return removed;
}

/**
 * Liveness of one instance: answered from the last `observe` when it is younger than `maxAgeMs`
 * (no API call), else by one DescribeAutoScalingInstances. Only an InService, healthy instance is
 * alive: the daemon's readiness check hands an instance jobs once its heartbeat passes, and a
 * Pending instance is still booting (EC2 `pending`, no SSH yet; `connectInfo` refuses it).
 */
export async function heartbeatAwsInstance(
  ctx: AwsContext,
  ref: GroupRef,
  id: string,
  maxAgeMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  const seen = ctx.cache.seen.get(id);
  if (seen && ctx.time.now().getTime() - seen.at < maxAgeMs) {
    return seen.healthy && seen.state === 'running';
  }
  const d = (await whereAre(ctx, [id], signal)).get(id);
  if (!d || d.AutoScalingGroupName !== ref.name) return false;
  const state = instanceState(d.LifecycleState);
  return state === 'running' && (d.HealthStatus ?? '').toUpperCase() === 'HEALTHY';
}
