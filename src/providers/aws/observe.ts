/**
 * Batched, read-only observation of every Auto Scaling group a manager runs. One cycle costs
 *   ⌈fleets/200⌉·pages  DescribeInstances filtered by `tag:runfleet:fleet` (1000 per page)
 * + ⌈groups/100⌉        DescribeAutoScalingGroups by name (100 per page, instances included)
 * + pages               DescribeInstances by `instance-id` for group members EC2 did not list
 *                       yet (untagged members of adopted groups; launch races): usually none
 * + ⌈policies/100⌉      DescribePolicies for the whole Region, at most once per `policyCacheMs`
 * so the count grows with groups/100 and instances/1000, never with fleets one by one.
 *
 * The tagged-instance read comes first on purpose: anything it finds was launched before the group
 * read, so an instance tagged for a fleet but missing from its group is a real orphan, not a
 * launch that the group read has not caught up with.
 */
import {
  paginateDescribeAutoScalingGroups,
  paginateDescribePolicies,
  type AutoScalingClient,
  type AutoScalingGroup,
  type Filter as AsgFilter,
} from '@aws-sdk/client-auto-scaling';
import {
  paginateDescribeInstances,
  paginateDescribeSpotInstanceRequests,
  type EC2Client,
  type Filter as Ec2Filter,
  type Instance as Ec2Instance,
} from '@aws-sdk/client-ec2';
import { RUNFLEET_TAG } from './group-settings.js';
import type { GroupRef, ObservedGroup } from '../../model/observed.js';
import { allPages, chunks, pagingClient, type AwsContext } from './context.js';
import {
  ec2Tag,
  groupSettings,
  observedInstance,
  orphanInstanceDiagnostic,
  ownershipConflict,
  prerequisiteDiagnostics,
} from './map.js';

/** AWS limits: names per DescribeAutoScalingGroups call, values per EC2 filter, page sizes. */
export const ASG_NAMES_PER_CALL = 100;
export const EC2_FILTER_VALUES = 200;
export const EC2_PAGE_SIZE = 1000;
const LIVE_EC2_STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'];

/** Reads the named groups (with their instances), ⌈names/100⌉ calls plus pages. */
export async function describeGroups(
  ctx: AwsContext,
  names: string[],
  signal?: AbortSignal,
): Promise<Map<string, AutoScalingGroup>> {
  const found = new Map<string, AutoScalingGroup>();
  const client = pagingClient<AutoScalingClient>(ctx, 'autoscaling');
  for (const chunk of chunks([...new Set(names)], ASG_NAMES_PER_CALL)) {
    const pages = paginateDescribeAutoScalingGroups(
      { client, pageSize: ASG_NAMES_PER_CALL },
      { AutoScalingGroupNames: chunk },
      { abortSignal: signal },
    );
    for (const g of await allPages(pages, (p) => p.AutoScalingGroups))
      if (g.AutoScalingGroupName) found.set(g.AutoScalingGroupName, g);
  }
  return found;
}

/** All pages of one filtered DescribeInstances query. */
export async function describeInstances(
  ctx: AwsContext,
  filters: Ec2Filter[],
  signal?: AbortSignal,
): Promise<Ec2Instance[]> {
  const pages = paginateDescribeInstances(
    { client: pagingClient<EC2Client>(ctx, 'ec2'), pageSize: EC2_PAGE_SIZE },
    { Filters: filters },
    { abortSignal: signal },
  );
  const reservations = await allPages(pages, (p) => p.Reservations);
  return reservations.flatMap((r) => r.Instances ?? []);
}

/** Scaling policy names per group, for the whole Region; cached for `ctx.policyCacheMs`. */
async function policiesByGroup(ctx: AwsContext, signal?: AbortSignal): Promise<Map<string, string[]>> {
  const now = ctx.time.now().getTime();
  const cached = ctx.cache.policies;
  if (cached && now - cached.at < ctx.policyCacheMs) return cached.byGroup;
  const byGroup = new Map<string, string[]>();
  const pages = paginateDescribePolicies(
    { client: pagingClient<AutoScalingClient>(ctx, 'autoscaling'), pageSize: 100 },
    {},
    { abortSignal: signal },
  );
  for (const p of await allPages(pages, (page) => page.ScalingPolicies)) {
    if (!p.AutoScalingGroupName) continue;
    byGroup.set(p.AutoScalingGroupName, [
      ...(byGroup.get(p.AutoScalingGroupName) ?? []),
      p.PolicyName ?? '?',
    ]);
  }
  ctx.cache.policies = { at: now, byGroup };
  return byGroup;
}

/** Spot request status codes that mean "this instance gets its 2-minute interruption notice". */
export const SPOT_INTERRUPTION_CODES = new Set([
  'marked-for-termination',
  'marked-for-stop',
  'marked-for-hibernation',
]);

/**
 * Spot instances whose request is marked for interruption: the daemon drains them at once, so no
 * new job lands on an instance about to be reclaimed. One filtered DescribeSpotInstanceRequests per
 * 200 spot instances, and none at all for fleets without spot capacity.
 */
async function spotInterruptions(
  ctx: AwsContext,
  instances: Ec2Instance[],
  signal?: AbortSignal,
): Promise<Set<string>> {
  const requestIds = instances.flatMap((i) => (i.SpotInstanceRequestId ? [i.SpotInstanceRequestId] : []));
  const interrupted = new Set<string>();
  const client = pagingClient<EC2Client>(ctx, 'ec2');
  for (const chunk of chunks(requestIds, EC2_FILTER_VALUES)) {
    const pages = paginateDescribeSpotInstanceRequests(
      { client, pageSize: EC2_PAGE_SIZE },
      { Filters: [{ Name: 'spot-instance-request-id', Values: chunk }] },
      { abortSignal: signal },
    );
    for (const r of await allPages(pages, (p) => p.SpotInstanceRequests)) {
      if (r.InstanceId && SPOT_INTERRUPTION_CODES.has(r.Status?.Code ?? '')) interrupted.add(r.InstanceId);
    }
  }
  return interrupted;
}

function managerFilter(ctx: AwsContext): Ec2Filter[] {
  return ctx.manager === undefined ? [] : [{ Name: `tag:${RUNFLEET_TAG.manager}`, Values: [ctx.manager] }];
}

/** See the module comment for the call budget. Results come back in the order of `refs`. */
export async function observeGroups(
  ctx: AwsContext,
  refs: GroupRef[],
  signal?: AbortSignal,
): Promise<ObservedGroup[]> {
  if (refs.length === 0) return [];
  const fleets = [...new Set(refs.map((r) => r.fleet))];
  const ec2ById = new Map<string, Ec2Instance>();
  const taggedByFleet = new Map<string, Ec2Instance[]>();
  for (const chunk of chunks(fleets, EC2_FILTER_VALUES)) {
    const filters: Ec2Filter[] = [
      { Name: `tag:${RUNFLEET_TAG.fleet}`, Values: chunk },
      { Name: 'instance-state-name', Values: LIVE_EC2_STATES },
      ...managerFilter(ctx),
    ];
    for (const inst of await describeInstances(ctx, filters, signal)) {
      if (!inst.InstanceId) continue;
      ec2ById.set(inst.InstanceId, inst);
      const fleet = ec2Tag(inst.Tags, RUNFLEET_TAG.fleet) ?? '';
      taggedByFleet.set(fleet, [...(taggedByFleet.get(fleet) ?? []), inst]);
    }
  }

  const groups = await describeGroups(
    ctx,
    refs.map((r) => r.name),
    signal,
  );

  const unseen = [...groups.values()]
    .flatMap((g) => g.Instances ?? [])
    .flatMap((i) => (i.InstanceId && !ec2ById.has(i.InstanceId) ? [i.InstanceId] : []));
  for (const chunk of chunks(unseen, EC2_FILTER_VALUES)) {
    for (const inst of await describeInstances(ctx, [{ Name: 'instance-id', Values: chunk }], signal)) {
      if (inst.InstanceId) ec2ById.set(inst.InstanceId, inst);
    }
  }

  const policies = groups.size > 0 ? await policiesByGroup(ctx, signal) : new Map<string, string[]>();
  const interrupted = await spotInterruptions(ctx, [...ec2ById.values()], signal);
  const now = ctx.time.now();
  return refs.map((ref) => {
    const g = groups.get(ref.name);
    const members = new Set((g?.Instances ?? []).map((i) => i.InstanceId));
    const orphans = (taggedByFleet.get(ref.fleet) ?? []).filter(
      (i) => !members.has(i.InstanceId) && i.State?.Name !== 'shutting-down',
    );
    const orphanDiagnostics = orphans.map((i) => orphanInstanceDiagnostic(ref, i));
    if (!g) return { ref, exists: false, settings: {}, instances: [], diagnostics: orphanDiagnostics };
    const instances = (g.Instances ?? []).map((m) => {
      const inst = observedInstance(m, ec2ById.get(m.InstanceId ?? ''), now);
      if (interrupted.has(inst.id)) inst.interrupting = true;
      return inst;
    });
    for (const i of instances)
      ctx.cache.seen.set(i.id, { state: i.state, healthy: i.healthy ?? true, at: now.getTime() });
    // SetDesiredCapacity returns before the ASG lists the new instances: report the difference as
    // requested, so the planner does not ask for the same instances again.
    const live = instances.filter((i) => i.state === 'creating' || i.state === 'running').length;
    return {
      ref,
      exists: true,
      settings: groupSettings(g),
      requested: Math.max(0, (g.DesiredCapacity ?? 0) - live),
      instances,
      diagnostics: [
        ...ownershipConflict(ref, g, ctx.manager),
        ...prerequisiteDiagnostics(ref, g, policies.get(ref.name) ?? []),
        ...orphanDiagnostics,
      ],
    };
  });
}

/**
 * Every group in the Region tagged as runfleet's (and, with a manager id, as this manager's):
 * ⌈groups/100⌉ calls. The planner compares these with the fleet files to show orphan groups.
 */
export async function discoverGroups(ctx: AwsContext, signal?: AbortSignal): Promise<GroupRef[]> {
  const filters: AsgFilter[] = [{ Name: 'tag-key', Values: [RUNFLEET_TAG.fleet] }];
  if (ctx.manager !== undefined) filters.push({ Name: `tag:${RUNFLEET_TAG.manager}`, Values: [ctx.manager] });
  const refs: GroupRef[] = [];
  const pages = paginateDescribeAutoScalingGroups(
    { client: pagingClient<AutoScalingClient>(ctx, 'autoscaling'), pageSize: ASG_NAMES_PER_CALL },
    { Filters: filters, IncludeInstances: false },
    { abortSignal: signal },
  );
  for (const g of await allPages(pages, (p) => p.AutoScalingGroups)) {
    const fleet = g.Tags?.find((t) => t.Key === RUNFLEET_TAG.fleet)?.Value;
    if (g.AutoScalingGroupName && fleet) refs.push({ fleet, provider: 'aws', name: g.AutoScalingGroupName });
  }
  return refs;
}
