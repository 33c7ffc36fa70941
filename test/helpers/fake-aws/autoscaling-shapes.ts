/**
 * Auto Scaling reply shapes (awsQuery XML element names of the API reference): a group as
 * DescribeAutoScalingGroups lists it, its instances and launch templates.
 */
import type { XmlObject } from './wire.js';
import {
  ACCOUNT_ID,
  type FakeGroup,
  type FakeInstance,
  type LaunchTemplateRef,
  type World,
} from './world.js';

export function templateXml(t: LaunchTemplateRef): XmlObject {
  return { LaunchTemplateId: t.id, LaunchTemplateName: t.name, Version: t.version };
}

function memberXml(i: FakeInstance): XmlObject {
  return {
    InstanceId: i.id,
    InstanceType: i.instanceType,
    AvailabilityZone: i.availabilityZone,
    LifecycleState: i.lifecycle,
    HealthStatus: i.healthy ? 'Healthy' : 'Unhealthy',
    LaunchTemplate: i.launchTemplate ? templateXml(i.launchTemplate) : undefined,
    ProtectedFromScaleIn: i.protectedFromScaleIn,
  };
}

export function groupXml(world: World, g: FakeGroup, includeInstances = true): XmlObject {
  const mixed = g.mixed;
  return {
    AutoScalingGroupName: g.name,
    AutoScalingGroupARN: g.arn,
    LaunchTemplate: g.launchTemplate ? templateXml(g.launchTemplate) : undefined,
    MixedInstancesPolicy: mixed
      ? {
          LaunchTemplate: {
            LaunchTemplateSpecification: templateXml(mixed.launchTemplate),
            Overrides: mixed.overrides.map((t) => ({ InstanceType: t })),
          },
          InstancesDistribution: {
            OnDemandAllocationStrategy: 'prioritized',
            OnDemandBaseCapacity: mixed.distribution.onDemandBase,
            OnDemandPercentageAboveBaseCapacity: mixed.distribution.onDemandPercentage,
            SpotAllocationStrategy: mixed.distribution.spotAllocationStrategy,
          },
        }
      : undefined,
    MinSize: g.minSize,
    MaxSize: g.maxSize,
    DesiredCapacity: g.desired,
    DefaultCooldown: 300,
    AvailabilityZones: [...new Set(world.subnetsOf(g).map((s) => world.availabilityZoneOf(s)))].sort(),
    LoadBalancerNames: [],
    TargetGroupARNs: [],
    HealthCheckType: 'EC2',
    HealthCheckGracePeriod: 300,
    Instances: includeInstances ? g.members.map((id) => memberXml(world.instances.get(id)!)) : undefined,
    CreatedTime: g.createdTime,
    SuspendedProcesses: [...g.suspended].map(([ProcessName, SuspensionReason]) => ({
      ProcessName,
      SuspensionReason,
    })),
    VPCZoneIdentifier: g.vpcZoneIdentifier,
    EnabledMetrics: [],
    Status: g.status,
    Tags: [...g.tags].map(([Key, t]) => ({
      ResourceId: g.name,
      ResourceType: 'auto-scaling-group',
      Key,
      Value: t.value,
      PropagateAtLaunch: t.propagate,
    })),
    TerminationPolicies: ['Default'],
    NewInstancesProtectedFromScaleIn: g.newInstancesProtectedFromScaleIn,
    ServiceLinkedRoleARN: `arn:aws:iam::${ACCOUNT_ID}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`,
    CapacityRebalance: g.capacityRebalance,
    WarmPoolConfiguration: g.warmPool ? { MinSize: 0, PoolState: 'Stopped', Status: 'Active' } : undefined,
  };
}
