/**
 * What tests do to the fake Region outside the API: pre-create groups (through the same validation
 * as CreateAutoScalingGroup), attach scaling policies, finish pending transitions at once, mark spot
 * instances for interruption, and read a group back as plain data for assertions.
 */
import { createGroup, requireGroup } from './autoscaling.js';
import { QueryParams } from './wire.js';
import type { World } from './world.js';

export interface SeedGroupSpec {
  name: string;
  maxSize: number;
  minSize?: number;
  desired?: number;
  launchTemplateName?: string;
  subnets?: string[];
  /** Group tags; all propagated at launch unless listed in `unpropagated`. */
  tags?: Record<string, string>;
  unpropagated?: string[];
  newInstancesProtectedFromScaleIn?: boolean;
  capacityRebalance?: boolean;
  suspendedProcesses?: string[];
}

/** Creates a group as an operator would have, outside runfleet; its instances launch as usual. */
export function seedGroup(world: World, spec: SeedGroupSpec): void {
  const form = new URLSearchParams({
    AutoScalingGroupName: spec.name,
    MinSize: String(spec.minSize ?? 0),
    MaxSize: String(spec.maxSize),
    DesiredCapacity: String(spec.desired ?? 0),
    'LaunchTemplate.LaunchTemplateName': spec.launchTemplateName ?? 'operator-lt',
    'LaunchTemplate.Version': '$Latest',
    VPCZoneIdentifier: (spec.subnets ?? ['subnet-0aa']).join(','),
    NewInstancesProtectedFromScaleIn: String(spec.newInstancesProtectedFromScaleIn ?? false),
    CapacityRebalance: String(spec.capacityRebalance ?? false),
  });
  Object.entries(spec.tags ?? {}).forEach(([key, value], i) => {
    const t = `Tags.member.${i + 1}`;
    form.set(`${t}.ResourceId`, spec.name);
    form.set(`${t}.ResourceType`, 'auto-scaling-group');
    form.set(`${t}.Key`, key);
    form.set(`${t}.Value`, value);
    form.set(`${t}.PropagateAtLaunch`, String(!(spec.unpropagated ?? []).includes(key)));
  });
  createGroup(world, new QueryParams(form));
  const g = requireGroup(world, spec.name);
  for (const p of spec.suspendedProcesses ?? []) g.suspended.set(p, 'User suspended');
  world.advance();
}

/** Replaces the scaling policies attached to `group`. */
export function setPolicies(
  world: World,
  group: string,
  names: string[],
  type = 'TargetTrackingScaling',
): void {
  const kept = world.policies.filter((p) => p.group !== group);
  world.policies.splice(0, world.policies.length, ...kept, ...names.map((name) => ({ group, name, type })));
}

/** Launches what the groups' desired capacities ask for now; the new instances stay Pending. */
export function launchNow(world: World): void {
  for (const g of world.groups.values()) g.desiredRaisedAt = -Infinity;
  world.advance();
}

/** Completes every launch and transition now (Pending → InService, Terminating → Terminated). */
export function settle(world: World): void {
  for (const g of world.groups.values()) g.desiredRaisedAt = -Infinity;
  for (const i of world.instances.values()) i.transitionAt = 0;
  world.advance();
  for (const i of world.instances.values()) i.transitionAt = 0;
  world.advance();
}

/** Gives a spot instance its two-minute interruption notice (as DescribeSpotInstanceRequests shows it). */
export function interruptSpot(world: World, instanceId: string): void {
  const inst = world.instances.get(instanceId);
  if (!inst?.spot) throw new Error(`${instanceId} is not a spot instance`);
  inst.spot.statusCode = 'marked-for-termination';
}

export interface GroupView {
  name: string;
  minSize: number;
  maxSize: number;
  desired: number;
  newInstancesProtectedFromScaleIn: boolean;
  capacityRebalance: boolean;
  suspendedProcesses: string[];
  tags: Record<string, { value: string; propagate: boolean }>;
  vpcZoneIdentifier: string;
  launchTemplate?: { id: string; name: string; version: string };
  mixed?: {
    launchTemplate: { id: string; name: string; version: string };
    overrides: string[];
    distribution: { onDemandBase: number; onDemandPercentage: number; spotAllocationStrategy: string };
  };
  instances: {
    id: string;
    lifecycle: string;
    ec2State: string;
    privateIp: string;
    protectedFromScaleIn: boolean;
    spot: boolean;
    launchTime: string;
    tags: Record<string, string>;
  }[];
}

/** The group as plain data, brought up to now first; undefined when it does not exist. */
export function groupView(world: World, name: string): GroupView | undefined {
  world.advance();
  const g = world.groups.get(name);
  if (!g) return undefined;
  return {
    name: g.name,
    minSize: g.minSize,
    maxSize: g.maxSize,
    desired: g.desired,
    newInstancesProtectedFromScaleIn: g.newInstancesProtectedFromScaleIn,
    capacityRebalance: g.capacityRebalance,
    suspendedProcesses: [...g.suspended.keys()].sort(),
    tags: Object.fromEntries([...g.tags].map(([k, t]) => [k, { ...t }])),
    vpcZoneIdentifier: g.vpcZoneIdentifier,
    ...(g.launchTemplate ? { launchTemplate: { ...g.launchTemplate } } : {}),
    ...(g.mixed
      ? {
          mixed: {
            launchTemplate: { ...g.mixed.launchTemplate },
            overrides: [...g.mixed.overrides],
            distribution: { ...g.mixed.distribution },
          },
        }
      : {}),
    instances: g.members.map((id) => {
      const i = world.instances.get(id)!;
      return {
        id: i.id,
        lifecycle: i.lifecycle,
        ec2State: i.ec2State,
        privateIp: i.privateIp,
        protectedFromScaleIn: i.protectedFromScaleIn,
        spot: i.spot !== undefined,
        launchTime: i.launchTime.toISOString(),
        tags: Object.fromEntries(i.tags),
      };
    }),
  };
}
