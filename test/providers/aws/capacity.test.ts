import t from 'tap';
import {
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
  SetDesiredCapacityCommand,
  TerminateInstanceInAutoScalingGroupCommand,
} from '@aws-sdk/client-auto-scaling';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { DescribePoliciesCommand } from '@aws-sdk/client-auto-scaling';
import { ErrorCode } from '../../../src/errors.js';
import type { GroupRef } from '../../../src/model/observed.js';
import { asgGroup, asgInstance, awsError, ec2Instance, setup } from './fixtures/aws.js';

const ref: GroupRef = { fleet: 'web', provider: 'aws', name: 'asg-web' };

t.test('increase sets desired to current + n, capped at MaxSize', async (t) => {
  const { asg, provider } = setup();
  asg
    .on(DescribeAutoScalingGroupsCommand)
    .resolvesOnce({ AutoScalingGroups: [asgGroup('asg-web', 'web', { DesiredCapacity: 3, MaxSize: 20 })] })
    .resolvesOnce({ AutoScalingGroups: [asgGroup('asg-web', 'web', { DesiredCapacity: 18, MaxSize: 20 })] })
    .resolvesOnce({ AutoScalingGroups: [asgGroup('asg-web', 'web', { DesiredCapacity: 20, MaxSize: 20 })] });
  t.equal(await provider.increase(ref, 4), 4);
  t.equal(await provider.increase(ref, 4), 2, 'only up to MaxSize');
  t.equal(await provider.increase(ref, 4), 0, 'at MaxSize nothing is requested');
  t.same(
    asg.commandCalls(SetDesiredCapacityCommand).map((c) => c.args[0].input),
    [
      { AutoScalingGroupName: 'asg-web', DesiredCapacity: 7, HonorCooldown: false },
      { AutoScalingGroupName: 'asg-web', DesiredCapacity: 20, HonorCooldown: false },
    ],
  );
  t.equal(await provider.increase(ref, 0), 0);
});

t.test('increase refuses a group owned by another fleet', async (t) => {
  const { asg, provider } = setup();
  asg.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [asgGroup('asg-web', 'api')] });
  await t.rejects(provider.increase(ref, 1), { code: ErrorCode.PROVIDER, message: /runfleet:fleet=api/ });
  t.equal(asg.commandCalls(SetDesiredCapacityCommand).length, 0);
});

t.test('throttling backs off with jitter and then succeeds', async (t) => {
  const { asg, provider, sleeps } = setup();
  asg
    .on(DescribeAutoScalingGroupsCommand)
    .resolves({ AutoScalingGroups: [asgGroup('asg-web', 'web', { DesiredCapacity: 1 })] });
  asg
    .on(SetDesiredCapacityCommand)
    .rejectsOnce(awsError('Throttling', 'Rate exceeded'))
    .rejectsOnce(awsError('InternalFailure', 'oops', 500))
    .resolves({});
  t.equal(await provider.increase(ref, 1), 1);
  t.equal(asg.commandCalls(SetDesiredCapacityCommand).length, 3);
  t.same(sleeps, [100, 200], 'full jitter (random 0.5) of 200 ms, 400 ms');
});

t.test('throttling that never ends surfaces PROVIDER_THROTTLED after bounded attempts', async (t) => {
  const { asg, provider, sleeps } = setup({ retry: { maxAttempts: 4, baseDelayMs: 1000, maxDelayMs: 3000 } });
  asg.on(DescribeAutoScalingGroupsCommand).rejects(awsError('Throttling', 'Rate exceeded'));
  await t.rejects(provider.increase(ref, 1), {
    code: ErrorCode.PROVIDER_THROTTLED,
    retryable: true,
    message: /autoscaling:DescribeAutoScalingGroups after 4 attempts/,
  });
  t.equal(asg.commandCalls(DescribeAutoScalingGroupsCommand).length, 4);
  t.same(sleeps, [500, 1000, 1500], 'every retry slept; delays capped at maxDelayMs');
});

t.test('decrease terminates only the requested ids of this group, decrementing desired', async (t) => {
  const { asg, provider } = setup();
  asg.on(DescribeAutoScalingInstancesCommand).resolves({
    AutoScalingInstances: [
      {
        InstanceId: 'i-1',
        AutoScalingGroupName: 'asg-web',
        LifecycleState: 'InService',
        HealthStatus: 'HEALTHY',
        AvailabilityZone: 'a',
        ProtectedFromScaleIn: true,
      },
      {
        InstanceId: 'i-2',
        AutoScalingGroupName: 'asg-web',
        LifecycleState: 'Terminating',
        HealthStatus: 'HEALTHY',
        AvailabilityZone: 'a',
        ProtectedFromScaleIn: true,
      },
      {
        InstanceId: 'i-other',
        AutoScalingGroupName: 'asg-api',
        LifecycleState: 'InService',
        HealthStatus: 'HEALTHY',
        AvailabilityZone: 'a',
        ProtectedFromScaleIn: true,
      },
      {
        InstanceId: 'i-4',
        AutoScalingGroupName: 'asg-web',
        LifecycleState: 'InService',
        HealthStatus: 'HEALTHY',
        AvailabilityZone: 'a',
        ProtectedFromScaleIn: true,
      },
      {
        InstanceId: 'i-5',
        AutoScalingGroupName: 'asg-web',
        LifecycleState: 'InService',
        HealthStatus: 'HEALTHY',
        AvailabilityZone: 'a',
        ProtectedFromScaleIn: true,
      },
    ],
  });
  asg
    .on(TerminateInstanceInAutoScalingGroupCommand, { InstanceId: 'i-4' })
    .rejects(
      awsError('ValidationError', 'Instance Id not found - No managed instance found for instance ID: i-4'),
    )
    .on(TerminateInstanceInAutoScalingGroupCommand, { InstanceId: 'i-5' })
    .rejects(awsError('ServiceUnavailable', 'try later', 503))
    .on(TerminateInstanceInAutoScalingGroupCommand, { InstanceId: 'i-1' })
    .resolves({});
  const removed = await provider.decrease(ref, ['i-1', 'i-2', 'i-gone', 'i-other', 'i-4', 'i-5', 'i-1']);
  t.same(removed, ['i-1', 'i-2', 'i-gone', 'i-4'], 'gone, terminating and not-found count as removed');
  const terminated = asg.commandCalls(TerminateInstanceInAutoScalingGroupCommand).map((c) => c.args[0].input);
  t.same(
    terminated.map((i) => i.InstanceId),
    ['i-1', 'i-4', 'i-5'],
    'never i-other (another group), never i-2 twice, i-5 not retried after an ambiguous 5xx',
  );
  t.ok(terminated.every((i) => i.ShouldDecrementDesiredCapacity === true));
  t.same(asg.commandCalls(DescribeAutoScalingInstancesCommand)[0]?.args[0].input.InstanceIds, [
    'i-1',
    'i-2',
    'i-gone',
    'i-other',
    'i-4',
    'i-5',
  ]);
});

t.test('decrease throws when nothing could be removed', async (t) => {
  const { asg, provider } = setup();
  asg.on(DescribeAutoScalingInstancesCommand).resolves({
    AutoScalingInstances: [
      {
        InstanceId: 'i-1',
        AutoScalingGroupName: 'asg-web',
        LifecycleState: 'InService',
        HealthStatus: 'HEALTHY',
        AvailabilityZone: 'a',
        ProtectedFromScaleIn: true,
      },
    ],
  });
  asg
    .on(TerminateInstanceInAutoScalingGroupCommand)
    .rejects(
      awsError(
        'AccessDenied',
        'User: arn:aws:iam::123:user/x is not authorized to perform: autoscaling:TerminateInstanceInAutoScalingGroup',
      ),
    );
  await t.rejects(provider.decrease(ref, ['i-1']), {
    code: ErrorCode.PROVIDER_AUTH,
    hint: /grant autoscaling:TerminateInstanceInAutoScalingGroup/,
  });
});

t.test('heartbeat answers from the last observe, else asks Auto Scaling', async (t) => {
  const { asg, ec2, provider, clock } = setup();
  asg.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [
      asgGroup('asg-web', 'web', {
        Instances: [asgInstance('i-1'), asgInstance('i-2', { HealthStatus: 'Unhealthy' })],
      }),
    ],
  });
  asg.on(DescribePoliciesCommand).resolves({});
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [
      { Instances: [ec2Instance('i-1', { fleet: 'web' }), ec2Instance('i-2', { fleet: 'web' })] },
    ],
  });
  await provider.observe([ref]);
  t.equal(await provider.heartbeat(ref, 'i-1'), true);
  t.equal(await provider.heartbeat(ref, 'i-2'), false);
  t.equal(asg.commandCalls(DescribeAutoScalingInstancesCommand).length, 0, 'no API call while fresh');
  clock.advance(60_000);
  asg.on(DescribeAutoScalingInstancesCommand).resolves({ AutoScalingInstances: [] });
  t.equal(await provider.heartbeat(ref, 'i-1'), false, 'gone from the group');
  t.equal(asg.commandCalls(DescribeAutoScalingInstancesCommand).length, 1);
});
