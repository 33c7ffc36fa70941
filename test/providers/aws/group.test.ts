import t from 'tap';
import {
  CreateAutoScalingGroupCommand,
  CreateOrUpdateTagsCommand,
  DeleteAutoScalingGroupCommand,
  DeleteTagsCommand,
  DescribeAutoScalingGroupsCommand,
  SuspendProcessesCommand,
  UpdateAutoScalingGroupCommand,
} from '@aws-sdk/client-auto-scaling';
import type { GroupRef } from '../../../src/model/observed.js';
import { ErrorCode } from '../../../src/errors.js';
import {
  OWNED_CREATE,
  asgGroup,
  asgInstance,
  autoScalingFault,
  awsError,
  awsFleet,
  setup,
} from './fixtures/aws.js';

const mutating = [
  CreateAutoScalingGroupCommand,
  UpdateAutoScalingGroupCommand,
  SuspendProcessesCommand,
  CreateOrUpdateTagsCommand,
  DeleteAutoScalingGroupCommand,
  DeleteTagsCommand,
];

/** How many mutating Auto Scaling calls the mock saw. */
const writes = (asg: ReturnType<typeof setup>['asg']) =>
  asg.calls().filter((c) => mutating.some((command) => c.args[0] instanceof command)).length;

t.test('creates an owned group with runfleet settings, then suspends AZRebalance', async (t) => {
  const { asg, provider } = setup({ manager: 'm1' });
  asg.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [] });
  const fleet = awsFleet('web', { create: OWNED_CREATE, max_instances: 8 });
  await provider.applyGroup(fleet);
  const create = asg.commandCalls(CreateAutoScalingGroupCommand)[0]?.args[0].input;
  t.match(create, {
    AutoScalingGroupName: 'runfleet-web',
    LaunchTemplate: { LaunchTemplateName: 'runner-lt', Version: '$Latest' },
    VPCZoneIdentifier: 'subnet-a,subnet-b',
    MinSize: 0,
    MaxSize: 8,
    DesiredCapacity: 0,
    NewInstancesProtectedFromScaleIn: true,
    CapacityRebalance: false,
  });
  t.same(
    create?.Tags?.map((tag) => [tag.Key, tag.Value, tag.PropagateAtLaunch]),
    [
      ['runfleet:fleet', 'web', true],
      ['runfleet:lifecycle', 'owned', true],
      ['runfleet:manager', 'm1', true],
    ],
  );
  t.same(asg.commandCalls(SuspendProcessesCommand)[0]?.args[0].input, {
    AutoScalingGroupName: 'runfleet-web',
    ScalingProcesses: ['AZRebalance'],
  });
});

t.test('a mixed on-demand/spot group gets a MixedInstancesPolicy', async (t) => {
  const { asg, provider } = setup();
  asg.on(DescribeAutoScalingGroupsCommand).resolves({});
  const create = {
    ...OWNED_CREATE,
    instance_types: ['m7i.large', 'm6i.large'],
    on_demand_percentage_above_base_capacity: 0,
  };
  await provider.applyGroup(awsFleet('mix', { create }));
  const input = asg.commandCalls(CreateAutoScalingGroupCommand)[0]?.args[0].input;
  t.notOk(input?.LaunchTemplate);
  t.same(input?.MixedInstancesPolicy, {
    LaunchTemplate: {
      LaunchTemplateSpecification: { LaunchTemplateName: 'runner-lt', Version: '$Latest' },
      Overrides: [{ InstanceType: 'm7i.large' }, { InstanceType: 'm6i.large' }],
    },
    InstancesDistribution: {
      OnDemandBaseCapacity: 0,
      OnDemandPercentageAboveBaseCapacity: 0,
      SpotAllocationStrategy: 'price-capacity-optimized',
    },
  });
});

t.test('a retried create that finds AlreadyExists continues as an update', async (t) => {
  const { asg, provider } = setup();
  const fleet = awsFleet('web', { create: OWNED_CREATE });
  asg
    .on(DescribeAutoScalingGroupsCommand)
    .resolvesOnce({})
    .resolves({
      AutoScalingGroups: [
        asgGroup('runfleet-web', 'web', {
          lifecycle: 'owned',
          LaunchTemplate: { LaunchTemplateName: 'runner-lt', Version: '$Latest' },
          VPCZoneIdentifier: 'subnet-b,subnet-a',
          SuspendedProcesses: [],
        }),
      ],
    });
  asg
    .on(CreateAutoScalingGroupCommand)
    .rejects(autoScalingFault('AlreadyExists', 'AutoScalingGroup by this name already exists'));
  await provider.applyGroup(fleet);
  t.equal(asg.commandCalls(UpdateAutoScalingGroupCommand).length, 0, 'settings already match');
  t.equal(asg.commandCalls(SuspendProcessesCommand).length, 1, 'the missing suspension is completed');
});

t.test('updating an owned group sends only the settings that differ', async (t) => {
  const { asg, provider } = setup();
  asg.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [
      asgGroup('runfleet-web', 'web', {
        lifecycle: 'owned',
        MaxSize: 5,
        LaunchTemplate: { LaunchTemplateId: 'lt-1', LaunchTemplateName: 'runner-lt', Version: '3' },
        VPCZoneIdentifier: 'subnet-a,subnet-b',
      }),
    ],
  });
  await provider.applyGroup(awsFleet('web', { create: OWNED_CREATE, max_instances: 12 }));
  t.same(asg.commandCalls(UpdateAutoScalingGroupCommand)[0]?.args[0].input, {
    AutoScalingGroupName: 'runfleet-web',
    MaxSize: 12,
    LaunchTemplate: { LaunchTemplateName: 'runner-lt', Version: '$Latest' },
  });
  t.equal(asg.commandCalls(SuspendProcessesCommand).length, 0);
  t.equal(asg.commandCalls(CreateOrUpdateTagsCommand).length, 0);

  asg.resetHistory();
  await provider.applyGroup(
    awsFleet('web', {
      create: { ...OWNED_CREATE, launch_template: { name: 'runner-lt', version: '3' } },
      max_instances: 5,
    }),
  );
  t.equal(writes(asg), 0, 'a converged group gets no writes');
});

t.test('refuses to take over a group runfleet did not create or another fleet owns', async (t) => {
  const { asg, provider } = setup();
  asg
    .on(DescribeAutoScalingGroupsCommand)
    .resolvesOnce({ AutoScalingGroups: [asgGroup('runfleet-web', undefined)] })
    .resolvesOnce({ AutoScalingGroups: [asgGroup('asg-web', 'api')] });
  await t.rejects(provider.applyGroup(awsFleet('web', { create: OWNED_CREATE })), {
    code: ErrorCode.PROVIDER,
    message: /runfleet did not create it/,
    hint: /auto_scaling_group: runfleet-web/,
  });
  await t.rejects(provider.applyGroup(awsFleet('web')), { message: /tagged runfleet:fleet=api/ });
  t.equal(writes(asg), 0);
});

t.test('adopting changes only managed settings and tags', async (t) => {
  const { asg, provider } = setup();
  asg.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [
      asgGroup('ci-pool', undefined, {
        MinSize: 2,
        MaxSize: 40,
        NewInstancesProtectedFromScaleIn: false,
        CapacityRebalance: true,
        SuspendedProcesses: [{ ProcessName: 'ReplaceUnhealthy' }],
        LaunchTemplate: { LaunchTemplateName: 'theirs', Version: '7' },
      }),
    ],
  });
  await provider.applyGroup(awsFleet('web', { group: 'ci-pool', max_instances: 20 }));
  t.same(asg.commandCalls(UpdateAutoScalingGroupCommand)[0]?.args[0].input, {
    AutoScalingGroupName: 'ci-pool',
    MinSize: 0,
    MaxSize: 20,
    NewInstancesProtectedFromScaleIn: true,
    CapacityRebalance: false,
  });
  t.same(asg.commandCalls(SuspendProcessesCommand)[0]?.args[0].input.ScalingProcesses, ['AZRebalance']);
  t.same(
    asg
      .commandCalls(CreateOrUpdateTagsCommand)[0]
      ?.args[0].input.Tags?.map((tag) => `${tag.Key}=${tag.Value}`),
    ['runfleet:fleet=web', 'runfleet:lifecycle=adopted'],
  );
});

t.test('adopting a missing group is an error, never a create', async (t) => {
  const { asg, provider } = setup();
  asg.on(DescribeAutoScalingGroupsCommand).resolves({});
  await t.rejects(provider.applyGroup(awsFleet('web', { group: 'nope' })), {
    message: /nope .* does not exist/,
  });
  t.equal(asg.commandCalls(CreateAutoScalingGroupCommand).length, 0);
});

const ownedRef: GroupRef = { fleet: 'web', provider: 'aws', name: 'runfleet-web' };

t.test('deleting an owned group waits for its instances, then deletes without force', async (t) => {
  const { asg, provider } = setup();
  asg
    .on(DescribeAutoScalingGroupsCommand)
    .resolvesOnce({
      AutoScalingGroups: [
        asgGroup('runfleet-web', 'web', { lifecycle: 'owned', Instances: [asgInstance('i-1')] }),
      ],
    })
    .resolves({ AutoScalingGroups: [asgGroup('runfleet-web', 'web', { lifecycle: 'owned' })] });
  const fleet = awsFleet('web', { create: OWNED_CREATE });
  await t.rejects(provider.deleteGroup(ownedRef, fleet), {
    retryable: true,
    message: /still has 1 instance/,
  });
  t.equal(asg.commandCalls(DeleteAutoScalingGroupCommand).length, 0);
  await provider.deleteGroup(ownedRef, undefined);
  t.same(asg.commandCalls(DeleteAutoScalingGroupCommand)[0]?.args[0].input, {
    AutoScalingGroupName: 'runfleet-web',
    ForceDelete: false,
  });
});

t.test('a delete retried after success is a no-op', async (t) => {
  const { asg, provider } = setup();
  asg
    .on(DescribeAutoScalingGroupsCommand)
    .resolves({ AutoScalingGroups: [asgGroup('runfleet-web', 'web', { lifecycle: 'owned' })] });
  asg
    .on(DeleteAutoScalingGroupCommand)
    .rejects(awsError('ValidationError', 'AutoScalingGroup name not found - runfleet-web'));
  await provider.deleteGroup(ownedRef, undefined);
  asg.on(DescribeAutoScalingGroupsCommand).resolves({});
  await provider.deleteGroup(ownedRef, undefined);
  t.equal(asg.commandCalls(DeleteAutoScalingGroupCommand).length, 1);
});

t.test('an adopted group is released (tags removed), never deleted', async (t) => {
  const { asg, provider } = setup({ manager: 'm1' });
  asg.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [asgGroup('ci-pool', 'web', { manager: 'm1', Instances: [asgInstance('i-1')] })],
  });
  await provider.deleteGroup({ fleet: 'web', provider: 'aws', name: 'ci-pool' }, undefined);
  t.equal(asg.commandCalls(DeleteAutoScalingGroupCommand).length, 0);
  t.same(
    asg.commandCalls(DeleteTagsCommand)[0]?.args[0].input.Tags?.map((tag) => tag.Key),
    ['runfleet:fleet', 'runfleet:manager', 'runfleet:lifecycle'],
  );
});

t.test('an untagged group is never deleted, even by an owned fleet', async (t) => {
  const { asg, provider } = setup();
  asg
    .on(DescribeAutoScalingGroupsCommand)
    .resolves({ AutoScalingGroups: [asgGroup('runfleet-web', undefined)] });
  await t.rejects(provider.deleteGroup(ownedRef, awsFleet('web', { create: OWNED_CREATE })), {
    message: /not tagged as created by runfleet/,
  });
  t.equal(asg.commandCalls(DeleteAutoScalingGroupCommand).length, 0);
});
