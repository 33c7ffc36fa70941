/**
 * The Auto Scaling actions of the fake endpoint (awsQuery, API version 2011-01-01), following the
 * API reference's parameter names, limits, defaults and error codes. Each handler returns the
 * `<XResult>` content, or undefined for actions without output.
 */
import { randomUUID } from 'node:crypto';
import { groupXml, templateXml } from './autoscaling-shapes.js';
import { AwsFault, paginate, validation, type QueryParams, type XmlObject } from './wire.js';
import { ACCOUNT_ID, type FakeGroup, type LaunchTemplateRef, type World } from './world.js';

type Handler = (world: World, p: QueryParams) => XmlObject | undefined;

export function requireGroup(world: World, name: string | undefined): FakeGroup {
  const g = name === undefined ? undefined : world.groups.get(name);
  if (!g) throw validation(`AutoScalingGroup name not found - AutoScalingGroup '${name}' not found`);
  return g;
}

function maxRecords(p: QueryParams, fallback: number, max: number): number {
  const n = p.int('MaxRecords') ?? fallback;
  if (n < 1 || n > max) {
    throw validation(
      `1 validation error detected: Value '${n}' at 'maxRecords' failed to satisfy constraint: Member must have value less than or equal to ${max}`,
    );
  }
  return n;
}

function checkSizes(min: number, max: number, desired: number): void {
  if (min > max) throw validation(`Max bound, ${max}, must be greater than or equal to min bound, ${min}`);
  if (desired < min || desired > max) {
    throw validation(
      `Desired capacity:${desired} must be between the specified min size:${min} and max size:${max}`,
    );
  }
}

function readTemplate(world: World, p: QueryParams, prefix: string): LaunchTemplateRef | undefined {
  if (!p.has(prefix)) return undefined;
  const id = p.get(`${prefix}.LaunchTemplateId`);
  const name = p.get(`${prefix}.LaunchTemplateName`);
  if ((id === undefined) === (name === undefined)) {
    throw validation('Valid requests must contain either launchTemplateId or LaunchTemplateName');
  }
  return world.resolveTemplate({ id, name, version: p.get(`${prefix}.Version`) });
}

/** LaunchTemplate / MixedInstancesPolicy of Create or Update; `base` is the group being updated. */
function applyTemplates(world: World, p: QueryParams, g: FakeGroup): void {
  const plain = readTemplate(world, p, 'LaunchTemplate');
  const mip = 'MixedInstancesPolicy';
  if (plain && p.has(mip))
    throw validation('Valid requests must contain either LaunchTemplate or MixedInstancesPolicy');
  if (plain) {
    g.launchTemplate = plain;
    delete g.mixed;
  }
  if (!p.has(mip)) return;
  const spec = readTemplate(world, p, `${mip}.LaunchTemplate.LaunchTemplateSpecification`);
  const previous = g.mixed;
  const launchTemplate = spec ?? previous?.launchTemplate;
  if (!launchTemplate) throw validation('A launch template must be specified in the mixed instances policy');
  const overridesPrefix = `${mip}.LaunchTemplate.Overrides.member`;
  const overrides = p
    .listPrefixes(overridesPrefix)
    .flatMap((o) => (p.get(`${o}.InstanceType`) ? [p.get(`${o}.InstanceType`)!] : []));
  const d = `${mip}.InstancesDistribution`;
  const prev = previous?.distribution;
  g.mixed = {
    launchTemplate,
    overrides: p.has(`${mip}.LaunchTemplate.Overrides`) ? overrides : (previous?.overrides ?? []),
    distribution: {
      onDemandBase: p.int(`${d}.OnDemandBaseCapacity`) ?? prev?.onDemandBase ?? 0,
      onDemandPercentage:
        p.int(`${d}.OnDemandPercentageAboveBaseCapacity`) ?? prev?.onDemandPercentage ?? 100,
      spotAllocationStrategy:
        p.get(`${d}.SpotAllocationStrategy`) ?? prev?.spotAllocationStrategy ?? 'lowest-price',
    },
  };
  delete g.launchTemplate;
}

/** Reads `Tags.member.N`, checking what AWS checks (resource, reserved `aws:` prefix). */
function readTags(
  p: QueryParams,
  group?: string,
): { group: string; key: string; value: string; propagate: boolean }[] {
  return p.listPrefixes('Tags.member').map((t) => {
    const key = p.get(`${t}.Key`);
    if (!key) throw validation('Tag key must be specified');
    if (key.startsWith('aws:'))
      throw validation(`Tag keys starting with 'aws:' are reserved for internal use`);
    const resourceId = p.get(`${t}.ResourceId`) ?? group;
    const type = p.get(`${t}.ResourceType`) ?? 'auto-scaling-group';
    if (type !== 'auto-scaling-group' || !resourceId) throw validation('Invalid resource for tag');
    return {
      group: resourceId,
      key,
      value: p.get(`${t}.Value`) ?? '',
      propagate: p.bool(`${t}.PropagateAtLaunch`) ?? false,
    };
  });
}

export function createGroup(world: World, p: QueryParams): void {
  const name = p.get('AutoScalingGroupName');
  if (!name) throw validation('AutoScalingGroupName is required');
  if (world.groups.has(name)) {
    throw new AwsFault(
      'AlreadyExists',
      `AutoScalingGroup by this name already exists - A group with the name ${name} already exists`,
    );
  }
  if (!p.has('LaunchTemplate') && !p.has('MixedInstancesPolicy')) {
    throw validation(
      'Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.',
    );
  }
  const subnets = p.get('VPCZoneIdentifier');
  if (!subnets) throw validation('At least one Availability Zone or VPC Subnet is required.');
  const minSize = p.int('MinSize');
  const maxSize = p.int('MaxSize');
  if (minSize === undefined || maxSize === undefined) throw validation('MinSize and MaxSize are required');
  const desired = p.int('DesiredCapacity') ?? minSize;
  checkSizes(minSize, maxSize, desired);
  const now = world.now();
  const g: FakeGroup = {
    name,
    arn: `arn:aws:autoscaling:${world.region}:${ACCOUNT_ID}:autoScalingGroup:${randomUUID()}:autoScalingGroupName/${name}`,
    minSize,
    maxSize,
    desired,
    desiredRaisedAt: now,
    vpcZoneIdentifier: subnets,
    newInstancesProtectedFromScaleIn: p.bool('NewInstancesProtectedFromScaleIn') ?? false,
    capacityRebalance: p.bool('CapacityRebalance') ?? false,
    suspended: new Map(),
    tags: new Map(),
    createdTime: new Date(now),
    members: [],
    warmPool: false,
  };
  applyTemplates(world, p, g);
  for (const t of readTags(p, name)) {
    if (t.group !== name) throw validation(`Tag resource ${t.group} does not match the group being created`);
    g.tags.set(t.key, { value: t.value, propagate: t.propagate });
  }
  world.groups.set(name, g);
}

function setDesired(world: World, g: FakeGroup, desired: number): void {
  if (desired > g.desired) g.desiredRaisedAt = world.now();
  g.desired = desired;
}

const updateGroup: Handler = (world, p) => {
  const g = requireGroup(world, p.get('AutoScalingGroupName'));
  const min = p.int('MinSize') ?? g.minSize;
  const max = p.int('MaxSize') ?? g.maxSize;
  let desired = p.int('DesiredCapacity');
  // Documented: a new MaxSize below the desired capacity (or MinSize above it) moves it implicitly.
  if (desired === undefined) desired = Math.min(max, Math.max(min, g.desired));
  checkSizes(min, max, desired);
  applyTemplates(world, p, g);
  g.minSize = min;
  g.maxSize = max;
  setDesired(world, g, desired);
  const vpc = p.get('VPCZoneIdentifier');
  if (vpc !== undefined) g.vpcZoneIdentifier = vpc;
  const prot = p.bool('NewInstancesProtectedFromScaleIn');
  if (prot !== undefined) g.newInstancesProtectedFromScaleIn = prot;
  const rebalance = p.bool('CapacityRebalance');
  if (rebalance !== undefined) g.capacityRebalance = rebalance;
  return undefined;
};

const describeGroups: Handler = (world, p) => {
  const names = p.list('AutoScalingGroupNames.member');
  const filters = p.listPrefixes('Filters.member').map((f) => ({
    name: p.get(`${f}.Name`) ?? '',
    values: p.list(`${f}.Values.member`),
  }));
  const matches = (g: FakeGroup) =>
    filters.every(({ name, values }) => {
      if (name === 'tag-key') return values.some((v) => g.tags.has(v));
      if (name === 'tag-value') return [...g.tags.values()].some((t) => values.includes(t.value));
      if (name.startsWith('tag:')) {
        const t = g.tags.get(name.slice(4));
        return t !== undefined && values.includes(t.value);
      }
      throw validation(`Filter name ${name} is invalid`);
    });
  const candidates =
    names.length > 0
      ? names.flatMap((n) => (world.groups.has(n) ? [world.groups.get(n)!] : []))
      : [...world.groups.values()];
  const { page, next } = paginate(candidates.filter(matches), maxRecords(p, 50, 100), p.get('NextToken'));
  const include = p.bool('IncludeInstances') ?? true;
  return { AutoScalingGroups: page.map((g) => groupXml(world, g, include)), NextToken: next };
};

const setDesiredCapacity: Handler = (world, p) => {
  const g = requireGroup(world, p.get('AutoScalingGroupName'));
  const desired = p.int('DesiredCapacity');
  if (desired === undefined) throw validation('DesiredCapacity is required');
  if (desired > g.maxSize) {
    throw validation(
      `New SetDesiredCapacity value ${desired} is above max value ${g.maxSize} for the AutoScalingGroup.`,
    );
  }
  if (desired < g.minSize) {
    throw validation(
      `New SetDesiredCapacity value ${desired} is below min value ${g.minSize} for the AutoScalingGroup.`,
    );
  }
  setDesired(world, g, desired);
  return undefined;
};

const terminateInstance: Handler = (world, p) => {
  const id = p.get('InstanceId') ?? '';
  const inst = world.instances.get(id);
  const g = inst?.group ? world.groups.get(inst.group) : undefined;
  if (!inst || !g)
    throw validation(`Instance Id not found - No managed instance found for instance ID: ${id}`);
  const decrement = p.bool('ShouldDecrementDesiredCapacity');
  if (decrement === undefined) throw validation('ShouldDecrementDesiredCapacity is required');
  if (inst.lifecycle === 'Terminating')
    throw validation(`The instance ${id} is already in Terminating state.`);
  if (decrement) {
    if (g.desired - 1 < g.minSize) {
      throw validation(
        `Currently, desiredSize equals minSize (${g.minSize}). Terminating instance without replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size.`,
      );
    }
    g.desired -= 1;
  }
  world.beginTermination(inst);
  return {
    Activity: {
      ActivityId: randomUUID(),
      AutoScalingGroupName: g.name,
      Description: `Terminating EC2 instance: ${id}`,
      Cause: `At ${new Date(world.now()).toISOString()} instance ${id} was taken out of service in response to a user request${decrement ? ', shrinking the capacity' : ''}.`,
      StartTime: new Date(world.now()),
      StatusCode: 'InProgress',
      Progress: 0,
    },
  };
};

const describeInstances: Handler = (world, p) => {
  const ids = p.list('InstanceIds.member');
  if (ids.length > 50) throw validation('The number of instance ids that may be passed in is 50.');
  const all = [...world.instances.values()].filter(
    (i) => i.group !== undefined && (ids.length === 0 || ids.includes(i.id)),
  );
  const { page, next } = paginate(all, maxRecords(p, 50, 50), p.get('NextToken'));
  return {
    AutoScalingInstances: page.map((i) => ({
      InstanceId: i.id,
      InstanceType: i.instanceType,
      AutoScalingGroupName: i.group,
      AvailabilityZone: i.availabilityZone,
      LifecycleState: i.lifecycle,
      // This API spells health in capitals, unlike DescribeAutoScalingGroups.
      HealthStatus: i.healthy ? 'HEALTHY' : 'UNHEALTHY',
      LaunchTemplate: i.launchTemplate ? templateXml(i.launchTemplate) : undefined,
      ProtectedFromScaleIn: i.protectedFromScaleIn,
    })),
    NextToken: next,
  };
};

const deleteGroup: Handler = (world, p) => {
  const g = requireGroup(world, p.get('AutoScalingGroupName'));
  if (p.bool('ForceDelete') !== true && (g.members.length > 0 || g.desired > 0)) {
    throw new AwsFault(
      'ResourceInUse',
      'You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.',
    );
  }
  for (const id of g.members) world.beginTermination(world.instances.get(id)!);
  world.groups.delete(g.name);
  world.policies.splice(0, world.policies.length, ...world.policies.filter((x) => x.group !== g.name));
  return undefined;
};

const suspendProcesses: Handler = (world, p) => {
  const g = requireGroup(world, p.get('AutoScalingGroupName'));
  const all = [
    'Launch',
    'Terminate',
    'AddToLoadBalancer',
    'AlarmNotification',
    'AZRebalance',
    'HealthCheck',
    'InstanceRefresh',
    'ReplaceUnhealthy',
    'ScheduledActions',
  ];
  const names = p.list('ScalingProcesses.member');
  for (const n of names.length > 0 ? names : all) {
    if (!all.includes(n)) throw validation(`Process ${n} is not a valid scaling process`);
    g.suspended.set(n, `User suspended at ${new Date(world.now()).toISOString()}`);
  }
  return undefined;
};

const resumeProcesses: Handler = (world, p) => {
  const g = requireGroup(world, p.get('AutoScalingGroupName'));
  const names = p.list('ScalingProcesses.member');
  for (const n of names.length > 0 ? names : [...g.suspended.keys()]) g.suspended.delete(n);
  return undefined;
};

const createOrUpdateTags: Handler = (world, p) => {
  for (const t of readTags(p))
    requireGroup(world, t.group).tags.set(t.key, { value: t.value, propagate: t.propagate });
  return undefined;
};

const deleteTags: Handler = (world, p) => {
  for (const t of readTags(p)) requireGroup(world, t.group).tags.delete(t.key);
  return undefined;
};

const describePolicies: Handler = (world, p) => {
  const group = p.get('AutoScalingGroupName');
  const names = p.list('PolicyNames.member');
  const matching = world.policies.filter(
    (x) => (group === undefined || x.group === group) && (names.length === 0 || names.includes(x.name)),
  );
  const { page, next } = paginate(matching, maxRecords(p, 50, 100), p.get('NextToken'));
  return {
    ScalingPolicies: page.map((x) => ({
      AutoScalingGroupName: x.group,
      PolicyName: x.name,
      PolicyARN: `arn:aws:autoscaling:${world.region}:${ACCOUNT_ID}:scalingPolicy:${x.name}:autoScalingGroupName/${x.group}:policyName/${x.name}`,
      PolicyType: x.type,
      Alarms: [],
      Enabled: true,
    })),
    NextToken: next,
  };
};

export const AUTOSCALING_ACTIONS: Record<string, Handler> = {
  CreateAutoScalingGroup: (world, p) => {
    createGroup(world, p);
    return undefined;
  },
  UpdateAutoScalingGroup: updateGroup,
  DeleteAutoScalingGroup: deleteGroup,
  DescribeAutoScalingGroups: describeGroups,
  SetDesiredCapacity: setDesiredCapacity,
  TerminateInstanceInAutoScalingGroup: terminateInstance,
  DescribeAutoScalingInstances: describeInstances,
  SuspendProcesses: suspendProcesses,
  ResumeProcesses: resumeProcesses,
  CreateOrUpdateTags: createOrUpdateTags,
  DeleteTags: deleteTags,
  DescribePolicies: describePolicies,
};
