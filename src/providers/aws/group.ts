/**
 * Creating, updating, adopting, deleting and releasing Auto Scaling groups. Each function reads the
 * group first and only calls the mutating APIs whose settings differ, so a repeated or retried call
 * converges without extra writes: Create → SuspendProcesses is safe to re-run after a crash between
 * the two, and a retried Create that finds `AlreadyExists` with runfleet's tags continues as an update.
 */
import {
  CreateAutoScalingGroupCommand,
  CreateOrUpdateTagsCommand,
  DeleteAutoScalingGroupCommand,
  DeleteTagsCommand,
  SuspendProcessesCommand,
  UpdateAutoScalingGroupCommand,
  type AutoScalingGroup,
  type LaunchTemplateSpecification,
  type MixedInstancesPolicy,
  type Tag,
} from '@aws-sdk/client-auto-scaling';
import { ErrorCode, FleetError } from '../../errors.js';
import type { AwsCreateSpec, AwsProviderSpec, Fleet } from '../../model/fleet.js';
import { groupRefFor } from '../../model/group.js';
import type { GroupRef, Json } from '../../model/observed.js';
import {
  desiredGroupSettings,
  MANAGED_SUSPENDED_PROCESSES,
  RUNFLEET_TAG,
  usesMixedInstances,
} from './group-settings.js';
import { canonicalJson } from '../../util/hash.js';
import { awsErrorCode, isNotFound } from './errors.js';
import { callAws, type AwsContext } from './context.js';
import { asgTag, groupSettings, ownershipConflict } from './map.js';
import { describeGroups } from './observe.js';

function awsSpec(fleet: Fleet): AwsProviderSpec {
  if (fleet.provider.type !== 'aws') {
    throw new FleetError(ErrorCode.INTERNAL, `fleet ${fleet.name} is not an aws fleet`);
  }
  return fleet.provider;
}

function refuseConflicts(ref: GroupRef, g: AutoScalingGroup, manager: string | undefined): void {
  const [conflict] = ownershipConflict(ref, g, manager);
  if (conflict) throw new FleetError(ErrorCode.PROVIDER, conflict.message, { hint: conflict.hint });
}

function launchTemplate(create: AwsCreateSpec): LaunchTemplateSpecification {
  const lt = create.launch_template;
  return lt.id !== undefined
    ? { LaunchTemplateId: lt.id, Version: lt.version }
    : { LaunchTemplateName: lt.name, Version: lt.version };
}

/** The template part of Create/Update: a plain launch template or a mixed instances policy. */
function templateParams(
  create: AwsCreateSpec,
  desired: Record<string, Json>,
): { LaunchTemplate: LaunchTemplateSpecification } | { MixedInstancesPolicy: MixedInstancesPolicy } {
  if (!usesMixedInstances(create)) return { LaunchTemplate: launchTemplate(create) };
  return {
    MixedInstancesPolicy: {
      LaunchTemplate: {
        LaunchTemplateSpecification: launchTemplate(create),
        Overrides: (create.instance_types ?? []).map((t) => ({ InstanceType: t })),
      },
      InstancesDistribution: {
        OnDemandBaseCapacity: desired.on_demand_base_capacity as number,
        OnDemandPercentageAboveBaseCapacity: desired.on_demand_percentage_above_base_capacity as number,
        SpotAllocationStrategy: desired.spot_allocation_strategy as string,
      },
    },
  };
}

function runfleetTags(name: string, desired: Record<string, Json>, manager: string | undefined): Tag[] {
  const tags = desired.tags as Record<string, string>;
  const entries = Object.entries(tags);
  if (manager !== undefined) entries.push([RUNFLEET_TAG.manager, manager]);
  // Propagated so instances carry the fleet tag: observe filters on it and finds orphans by it.
  return entries.map(([Key, Value]) => ({
    ResourceId: name,
    ResourceType: 'auto-scaling-group',
    Key,
    Value,
    PropagateAtLaunch: true,
  }));
}

/** Keys of `desired` whose value differs from `observed` (compared as canonical JSON). */
function differingKeys(desired: Record<string, Json>, observed: Record<string, Json>): Set<string> {
  return new Set(
    Object.keys(desired).filter((k) => canonicalJson(desired[k]) !== canonicalJson(observed[k] ?? null)),
  );
}

const TEMPLATE_KEYS = [
  'launch_template_id',
  'launch_template_name',
  'launch_template_version',
  'instance_types',
  'on_demand_base_capacity',
  'on_demand_percentage_above_base_capacity',
  'spot_allocation_strategy',
];

async function createGroup(ctx: AwsContext, fleet: Fleet, create: AwsCreateSpec, signal?: AbortSignal) {
  const name = groupRefFor(fleet).name;
  const desired = desiredGroupSettings(fleet, { manager: ctx.manager });
  await callAws(
    ctx,
    'autoscaling',
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: name,
      ...templateParams(create, desired),
      VPCZoneIdentifier: [...create.subnets].sort().join(','),
      MinSize: 0,
      MaxSize: fleet.max_instances,
      DesiredCapacity: 0,
      NewInstancesProtectedFromScaleIn: true,
      CapacityRebalance: false,
      Tags: runfleetTags(name, desired, ctx.manager),
    }),
    { signal },
  );
  await callAws(
    ctx,
    'autoscaling',
    new SuspendProcessesCommand({
      AutoScalingGroupName: name,
      ScalingProcesses: [...MANAGED_SUSPENDED_PROCESSES],
    }),
    { signal },
  );
}

async function updateGroup(ctx: AwsContext, fleet: Fleet, g: AutoScalingGroup, signal?: AbortSignal) {
  const spec = awsSpec(fleet);
  const ref = groupRefFor(fleet);
  refuseConflicts(ref, g, ctx.manager);
  if (spec.create && asgTag(g.Tags, RUNFLEET_TAG.lifecycle) !== 'owned') {
    throw new FleetError(
      ErrorCode.PROVIDER,
      `Auto Scaling group ${ref.name} exists but runfleet did not create it`,
      {
        hint: `adopt it with provider.auto_scaling_group: ${ref.name} (runfleet never takes ownership of a group it did not create)`,
      },
    );
  }
  const desired = desiredGroupSettings(fleet, { manager: ctx.manager });
  const diff = differingKeys(desired, groupSettings(g));
  const update: Record<string, unknown> = {};
  if (diff.has('min_size')) update.MinSize = desired.min_size;
  if (diff.has('max_size')) update.MaxSize = desired.max_size;
  if (diff.has('new_instances_protected_from_scale_in')) update.NewInstancesProtectedFromScaleIn = true;
  if (diff.has('capacity_rebalance')) update.CapacityRebalance = false;
  if (spec.create) {
    if (TEMPLATE_KEYS.some((k) => diff.has(k))) Object.assign(update, templateParams(spec.create, desired));
    if (diff.has('subnets')) update.VPCZoneIdentifier = (desired.subnets as string[]).join(',');
  }
  if (Object.keys(update).length > 0) {
    await callAws(
      ctx,
      'autoscaling',
      new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: ref.name, ...update }),
      {
        signal,
      },
    );
  }
  if (diff.has('suspended_processes')) {
    await callAws(
      ctx,
      'autoscaling',
      new SuspendProcessesCommand({
        AutoScalingGroupName: ref.name,
        ScalingProcesses: [...MANAGED_SUSPENDED_PROCESSES],
      }),
      { signal },
    );
  }
  if (diff.has('tags') || diff.has('manager')) {
    await callAws(
      ctx,
      'autoscaling',
      new CreateOrUpdateTagsCommand({ Tags: runfleetTags(ref.name, desired, ctx.manager) }),
      {
        signal,
      },
    );
  }
}

/**
 * Makes the fleet's group exist (owned) and match `desiredGroupSettings`. Adopted groups must exist;
 * only their managed settings and runfleet's tags are changed. Never touches DesiredCapacity.
 */
export async function applyAwsGroup(ctx: AwsContext, fleet: Fleet, signal?: AbortSignal): Promise<void> {
  const spec = awsSpec(fleet);
  const ref = groupRefFor(fleet);
  const existing = (await describeGroups(ctx, [ref.name], signal)).get(ref.name);
  if (existing) return updateGroup(ctx, fleet, existing, signal);
  if (!spec.create) {
    throw new FleetError(
      ErrorCode.PROVIDER,
      `Auto Scaling group ${ref.name} (auto_scaling_group) does not exist`,
      {
        hint: 'create the group first, fix provider.auto_scaling_group, or let runfleet own it with a create block',
      },
    );
  }
  try {
    await createGroup(ctx, fleet, spec.create, signal);
  } catch (e) {
    // A retried create whose first attempt went through: continue as an update of our own group.
    if (awsErrorCode(e) !== 'AlreadyExists') throw e;
    const g = (await describeGroups(ctx, [ref.name], signal)).get(ref.name);
    if (!g) throw e;
    await updateGroup(ctx, fleet, g, signal);
  }
}

/**
 * Removes a group the fleet no longer wants. Owned (the fleet has `create`, or, with no fleet, the
 * group is tagged `runfleet:lifecycle=owned`): DeleteAutoScalingGroup with ForceDelete false, only
 * once no instance is left (the caller decreases first). Adopted: runfleet's tags are removed and
 * nothing else changes. A missing group counts as done.
 */
export async function deleteAwsGroup(
  ctx: AwsContext,
  ref: GroupRef,
  fleet: Fleet | undefined,
  signal?: AbortSignal,
): Promise<void> {
  const g = (await describeGroups(ctx, [ref.name], signal)).get(ref.name);
  if (!g || g.Status === 'Delete in progress') return;
  refuseConflicts(ref, g, ctx.manager);
  const ownedTag = asgTag(g.Tags, RUNFLEET_TAG.lifecycle) === 'owned';
  const owned = fleet ? fleet.provider.type === 'aws' && fleet.provider.create !== undefined : ownedTag;
  if (owned) {
    if (!ownedTag) {
      throw new FleetError(
        ErrorCode.PROVIDER,
        `refusing to delete ${ref.name}: it is not tagged as created by runfleet`,
        {
          hint: `only groups tagged ${RUNFLEET_TAG.lifecycle}=owned are deleted; delete it by hand if intended`,
        },
      );
    }
    const live = (g.Instances ?? []).filter((i) => i.LifecycleState !== 'Terminated');
    if (live.length > 0) {
      throw new FleetError(
        ErrorCode.PROVIDER,
        `Auto Scaling group ${ref.name} still has ${live.length} instance(s)`,
        {
          hint: 'its instances are removed first; the delete is retried once they are gone',
          retryable: true,
        },
      );
    }
    try {
      await callAws(
        ctx,
        'autoscaling',
        new DeleteAutoScalingGroupCommand({ AutoScalingGroupName: ref.name, ForceDelete: false }),
        {
          signal,
        },
      );
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    return;
  }
  const keys = Object.values(RUNFLEET_TAG).filter((k) => asgTag(g.Tags, k) !== undefined);
  if (keys.length === 0) return;
  await callAws(
    ctx,
    'autoscaling',
    new DeleteTagsCommand({
      Tags: keys.map((Key) => ({ ResourceId: ref.name, ResourceType: 'auto-scaling-group', Key })),
    }),
    { signal },
  );
}
