import t from 'tap';
import type { AutoScalingGroup } from '@aws-sdk/client-auto-scaling';
import { desiredGroupSettings } from '../../../src/providers/aws/group-settings.js';
import { groupSettings } from '../../../src/providers/aws/map.js';
import { canonicalJson } from '../../../src/util/hash.js';
import { fleetSpec } from '../../helpers/fake-state.js';

const aws = { type: 'aws' as const, region: 'eu-west-1' };

t.test('local and static fleets have no provider-managed settings', async (t) => {
  t.same(desiredGroupSettings(fleetSpec()), {});
  t.same(desiredGroupSettings(fleetSpec({ provider: { type: 'static', hosts: ['a'] } })), {});
});

t.test('an adopted group: only the autoscaler prerequisites and ownership tags', async (t) => {
  const fleet = fleetSpec({
    name: 'web',
    max_instances: 12,
    provider: { ...aws, auto_scaling_group: 'ci-pool' },
  });
  t.same(desiredGroupSettings(fleet), {
    min_size: 0,
    max_size: 12,
    new_instances_protected_from_scale_in: true,
    capacity_rebalance: false,
    suspended_processes: ['AZRebalance'],
    tags: { 'runfleet:fleet': 'web', 'runfleet:lifecycle': 'adopted' },
  });
  t.equal(
    desiredGroupSettings(fleet, { manager: 'm1' }).manager,
    'm1',
    'the manager tag only with a manager id',
  );
});

t.test('an owned group adds template, subnets and instance types', async (t) => {
  const plain = fleetSpec({
    name: 'web',
    provider: {
      ...aws,
      create: { launch_template: { id: 'lt-1', name: 'ignored', version: '4' }, subnets: ['s-2', 's-1'] },
    },
  });
  t.match(desiredGroupSettings(plain), {
    tags: { 'runfleet:lifecycle': 'owned' },
    launch_template_id: 'lt-1',
    launch_template_version: '4',
    subnets: ['s-1', 's-2'],
    instance_types: [],
  });
  t.notOk('launch_template_name' in desiredGroupSettings(plain), 'only the form the fleet names is compared');
  t.notOk('spot_allocation_strategy' in desiredGroupSettings(plain));

  const mixed = fleetSpec({
    provider: {
      ...aws,
      create: {
        launch_template: { name: 'lt', version: '$Latest' },
        subnets: ['s-1'],
        instance_types: ['c7i.large', 'c6i.large'],
        on_demand_base_capacity: 1,
      },
    },
  });
  t.match(desiredGroupSettings(mixed), {
    launch_template_name: 'lt',
    instance_types: ['c7i.large', 'c6i.large'],
    on_demand_base_capacity: 1,
    on_demand_percentage_above_base_capacity: 100,
    spot_allocation_strategy: 'price-capacity-optimized',
  });
});

t.test('desired settings use the keys and shapes the AWS provider observes', async (t) => {
  const fleet = fleetSpec({
    name: 'web',
    max_instances: 6,
    provider: {
      ...aws,
      create: {
        launch_template: { name: 'lt', version: '2' },
        subnets: ['s-b', 's-a'],
        instance_types: ['m7i.large'],
        spot_allocation_strategy: 'capacity-optimized',
      },
    },
  });
  // The group exactly as `applyGroup` creates it.
  const created: AutoScalingGroup = {
    AutoScalingGroupName: 'runfleet-web',
    MinSize: 0,
    MaxSize: 6,
    DesiredCapacity: 0,
    DefaultCooldown: 300,
    AvailabilityZones: [],
    HealthCheckType: 'EC2',
    CreatedTime: new Date(0),
    NewInstancesProtectedFromScaleIn: true,
    CapacityRebalance: false,
    VPCZoneIdentifier: 's-a,s-b',
    SuspendedProcesses: [{ ProcessName: 'AZRebalance' }, { ProcessName: 'Launch' }],
    MixedInstancesPolicy: {
      LaunchTemplate: {
        LaunchTemplateSpecification: { LaunchTemplateId: 'lt-9', LaunchTemplateName: 'lt', Version: '2' },
        Overrides: [{ InstanceType: 'm7i.large' }],
      },
      InstancesDistribution: {
        OnDemandBaseCapacity: 0,
        OnDemandPercentageAboveBaseCapacity: 100,
        SpotAllocationStrategy: 'capacity-optimized',
      },
    },
    Tags: [
      { Key: 'runfleet:fleet', Value: 'web' },
      { Key: 'runfleet:lifecycle', Value: 'owned' },
    ],
  };
  const desired = desiredGroupSettings(fleet);
  const observed = groupSettings(created);
  const differing = Object.keys(desired).filter(
    (k) => canonicalJson(desired[k]) !== canonicalJson(observed[k]),
  );
  t.same(differing, [], 'a freshly created group shows no diff');
  const drifted = groupSettings({ ...created, SuspendedProcesses: [], CapacityRebalance: true });
  t.same(
    Object.keys(desired).filter((k) => canonicalJson(desired[k]) !== canonicalJson(drifted[k])),
    ['capacity_rebalance', 'suspended_processes'],
  );
});
