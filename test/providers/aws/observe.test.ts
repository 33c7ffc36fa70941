import t from 'tap';
import {
  DescribeAutoScalingGroupsCommand,
  DescribePoliciesCommand,
  type DescribeAutoScalingGroupsCommandInput,
} from '@aws-sdk/client-auto-scaling';
import {
  DescribeInstancesCommand,
  DescribeSpotInstanceRequestsCommand,
  type DescribeInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import type { GroupRef } from '../../../src/model/observed.js';
import { instanceState } from '../../../src/providers/aws/map.js';
import { asgGroup, asgInstance, ec2Instance, setup } from './fixtures/aws.js';

const ref = (fleet: string, name = `asg-${fleet}`): GroupRef => ({ fleet, provider: 'aws', name });

t.test('maps Auto Scaling lifecycle and EC2 state to fleeting states', async (t) => {
  t.equal(instanceState('Pending'), 'creating');
  t.equal(instanceState('Pending:Wait'), 'creating');
  t.equal(instanceState('InService'), 'running');
  t.equal(instanceState('InService', 'shutting-down'), 'deleting');
  t.equal(instanceState('Terminating:Wait'), 'deleting');
  t.equal(instanceState('Standby'), 'deleting');
  t.equal(instanceState('Terminated'), 'gone');
  t.equal(instanceState('InService', 'terminated'), 'gone');
});

t.test('observes groups and instances with one batched, filtered call set', async (t) => {
  const { asg, ec2, provider } = setup();
  asg.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [
      asgGroup('asg-a', 'a', {
        DesiredCapacity: 2,
        Instances: [
          asgInstance('i-1'),
          asgInstance('i-2', { LifecycleState: 'Pending', HealthStatus: 'Unhealthy' }),
        ],
      }),
    ],
  });
  asg.on(DescribePoliciesCommand).resolves({ ScalingPolicies: [] });
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [
      {
        Instances: [
          ec2Instance('i-1', { fleet: 'a', group: 'asg-a', spot: true, publicIp: '203.0.113.9' }),
          ec2Instance('i-2', { fleet: 'a', group: 'asg-a', state: 'pending' }),
        ],
      },
    ],
  });
  const [a, b] = await provider.observe([ref('a'), ref('b')]);
  t.ok(a?.exists);
  t.same(a?.diagnostics, []);
  t.match(a?.instances, [
    {
      id: 'i-1',
      state: 'running',
      healthy: true,
      lifecycle: 'spot',
      external_addr: '203.0.113.9',
      launched_at: '2026-03-01T11:00:00.000Z',
    },
    { id: 'i-2', state: 'creating', healthy: false, lifecycle: 'on-demand' },
  ]);
  t.match(a?.settings, {
    min_size: 0,
    max_size: 20,
    new_instances_protected_from_scale_in: true,
    capacity_rebalance: false,
    suspended_processes: ['AZRebalance'],
    tags: { 'runfleet:fleet': 'a', 'runfleet:lifecycle': 'adopted' },
  });
  t.same(b, { ref: ref('b'), exists: false, settings: {}, instances: [], diagnostics: [] });

  const groupCalls = asg.commandCalls(DescribeAutoScalingGroupsCommand);
  t.equal(groupCalls.length, 1, 'one DescribeAutoScalingGroups for both groups');
  t.same(groupCalls[0]?.args[0].input.AutoScalingGroupNames, ['asg-a', 'asg-b']);
  const ec2Calls = ec2.commandCalls(DescribeInstancesCommand);
  t.equal(ec2Calls.length, 1, 'members were all found by the tag query');
  const input = ec2Calls[0]?.args[0].input as DescribeInstancesCommandInput;
  t.equal(input.MaxResults, 1000);
  t.same(input.Filters?.[0], { Name: 'tag:runfleet:fleet', Values: ['a', 'b'] });
  t.match(input.Filters?.[1], { Name: 'instance-state-name' });
  t.notOk(input.Filters?.[1]?.Values?.includes('terminated'), 'terminated instances are filtered out');
});

t.test('follows NextToken across pages and chunks names by 100', async (t) => {
  const { asg, ec2, provider } = setup();
  const refs = Array.from({ length: 150 }, (_v, i) => ref(`f${i}`));
  asg.on(DescribeAutoScalingGroupsCommand).callsFake((input: DescribeAutoScalingGroupsCommandInput) => {
    const names = input.AutoScalingGroupNames ?? [];
    // Answer each chunk in two pages to exercise NextToken.
    const half = Math.ceil(names.length / 2);
    const part = input.NextToken ? names.slice(half) : names.slice(0, half);
    return {
      AutoScalingGroups: part.map((n) => asgGroup(n, n.slice(4), { Instances: [asgInstance(`i-${n}`)] })),
      NextToken: input.NextToken ? undefined : 'page-2',
    };
  });
  asg.on(DescribePoliciesCommand).resolves({});
  const pages = [
    { Reservations: [{ Instances: [ec2Instance('i-asg-f0', { fleet: 'f0' })] }], NextToken: 't2' },
    { Reservations: [{ Instances: [ec2Instance('i-asg-f1', { fleet: 'f1' })] }] },
  ];
  ec2
    .on(DescribeInstancesCommand)
    .callsFake((input: DescribeInstancesCommandInput) =>
      input.Filters?.[0]?.Name === 'instance-id'
        ? { Reservations: [{ Instances: (input.Filters[0].Values ?? []).map((id) => ec2Instance(id)) }] }
        : input.NextToken === 't2'
          ? pages[1]
          : pages[0],
    );
  const observed = await provider.observe(refs);
  t.equal(observed.length, 150);
  t.ok(observed.every((g) => g.exists && g.instances.length === 1));
  t.equal(observed[149]?.ref.name, 'asg-f149', 'results follow the order of refs');
  const groupCalls = asg.commandCalls(DescribeAutoScalingGroupsCommand).map((c) => c.args[0].input);
  t.same(
    groupCalls.map((i) => [i.AutoScalingGroupNames?.length, i.NextToken]),
    [
      [100, undefined],
      [100, 'page-2'],
      [50, undefined],
      [50, 'page-2'],
    ],
  );
  const ec2Calls = ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input);
  t.same(
    ec2Calls.map((i) => [i.Filters?.[0]?.Name, i.NextToken]),
    [
      ['tag:runfleet:fleet', undefined],
      ['tag:runfleet:fleet', 't2'],
      ['instance-id', undefined],
    ],
    'tag query paged, then one instance-id query for the 148 members EC2 had not listed',
  );
  t.equal(ec2Calls[2]?.Filters?.[0]?.Values?.length, 148);
});

t.test('flags scaling policies and ownership conflicts as errors', async (t) => {
  const { asg, ec2, provider } = setup({ manager: 'm1' });
  asg.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [
      asgGroup('asg-a', 'other'),
      asgGroup('asg-b', 'b', { manager: 'm2' }),
      asgGroup('asg-c', 'c'),
    ],
  });
  asg.on(DescribePoliciesCommand).resolves({
    ScalingPolicies: [{ AutoScalingGroupName: 'asg-c', PolicyName: 'cpu-target' }],
  });
  ec2.on(DescribeInstancesCommand).resolves({});
  const [a, b, c] = await provider.observe([ref('a'), ref('b'), ref('c')]);
  t.match(a?.diagnostics, [{ severity: 'error', code: 'GROUP_OWNED_BY_OTHER_FLEET' }]);
  t.match(b?.diagnostics, [{ severity: 'error', code: 'GROUP_OWNED_BY_OTHER_MANAGER' }]);
  t.match(c?.diagnostics, [{ severity: 'error', code: 'GROUP_HAS_SCALING_POLICIES', message: /cpu-target/ }]);
  t.match(c?.diagnostics[0]?.hint, /delete-policy/);
  const filters = ec2.commandCalls(DescribeInstancesCommand)[0]?.args[0].input.Filters;
  t.same(
    filters?.[2],
    { Name: 'tag:runfleet:manager', Values: ['m1'] },
    'instances narrowed to this manager',
  );

  await provider.observe([ref('c')]);
  t.equal(asg.commandCalls(DescribePoliciesCommand).length, 1, 'policies are cached between cycles');
});

t.test('shows orphan instances and never drops them silently', async (t) => {
  const { asg, ec2, provider } = setup();
  asg.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [asgGroup('asg-a', 'a', { Instances: [asgInstance('i-1')] })],
  });
  asg.on(DescribePoliciesCommand).resolves({});
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [
      {
        Instances: [
          ec2Instance('i-1', { fleet: 'a', group: 'asg-a' }),
          ec2Instance('i-detached', { fleet: 'a' }),
          ec2Instance('i-elsewhere', { fleet: 'a', group: 'asg-z' }),
          ec2Instance('i-dying', { fleet: 'a', state: 'shutting-down' }),
          ec2Instance('i-gone-group', { fleet: 'g' }),
        ],
      },
    ],
  });
  const [a, g] = await provider.observe([ref('a'), ref('g')]);
  t.same(
    a?.instances.map((i) => i.id),
    ['i-1'],
  );
  t.match(a?.diagnostics, [
    { severity: 'warning', code: 'ORPHAN_INSTANCE', message: /i-detached.*outside any Auto Scaling group/ },
    { severity: 'warning', code: 'ORPHAN_INSTANCE', message: /i-elsewhere.*in group asg-z/ },
  ]);
  t.equal(a?.diagnostics.length, 2, 'an instance already shutting down is not an orphan');
  t.match(g, { exists: false, diagnostics: [{ code: 'ORPHAN_INSTANCE', message: /i-gone-group/ }] });
});

t.test('discover lists runfleet-tagged groups (observe names those without a fleet)', async (t) => {
  const { asg, provider } = setup({ manager: 'm1' });
  asg
    .on(DescribeAutoScalingGroupsCommand)
    .resolvesOnce({ AutoScalingGroups: [asgGroup('asg-a', 'a')], NextToken: 'n' })
    .resolvesOnce({ AutoScalingGroups: [asgGroup('asg-old', 'old', { lifecycle: 'owned' })] });
  const found = await provider.discover();
  t.same(found, [ref('a'), ref('old', 'asg-old')]);
  const input = asg.commandCalls(DescribeAutoScalingGroupsCommand)[0]?.args[0].input;
  t.same(input?.Filters, [
    { Name: 'tag-key', Values: ['runfleet:fleet'] },
    { Name: 'tag:runfleet:manager', Values: ['m1'] },
  ]);
  t.equal(input?.IncludeInstances, false);
});

t.test('an empty observe makes no calls', async (t) => {
  const { asg, ec2, provider } = setup();
  t.same(await provider.observe([]), []);
  t.equal(asg.calls().length + ec2.calls().length, 0);
});

t.test('a spot instance marked for interruption is reported as interrupting', async (t) => {
  const { asg, ec2, provider } = setup();
  asg.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [
      asgGroup('asg-a', 'a', {
        DesiredCapacity: 3,
        Instances: [asgInstance('i-1'), asgInstance('i-2'), asgInstance('i-3')],
      }),
    ],
  });
  asg.on(DescribePoliciesCommand).resolves({ ScalingPolicies: [] });
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [
      {
        Instances: [
          ec2Instance('i-1', { fleet: 'a', spotRequest: 'sir-1' }),
          ec2Instance('i-2', { fleet: 'a', spotRequest: 'sir-2' }),
          ec2Instance('i-3', { fleet: 'a' }),
        ],
      },
    ],
  });
  ec2.on(DescribeSpotInstanceRequestsCommand).resolves({
    SpotInstanceRequests: [
      { SpotInstanceRequestId: 'sir-1', InstanceId: 'i-1', Status: { Code: 'marked-for-termination' } },
      { SpotInstanceRequestId: 'sir-2', InstanceId: 'i-2', Status: { Code: 'fulfilled' } },
    ],
  });
  const [a] = await provider.observe([ref('a')]);
  t.same(
    a?.instances.map((i) => [i.id, i.lifecycle, i.interrupting === true]),
    [
      ['i-1', 'spot', true],
      ['i-2', 'spot', false],
      ['i-3', 'on-demand', false],
    ],
  );
  const calls = ec2.commandCalls(DescribeSpotInstanceRequestsCommand);
  t.equal(calls.length, 1, 'one filtered call for all spot instances');
  t.same(calls[0]?.args[0].input.Filters, [{ Name: 'spot-instance-request-id', Values: ['sir-1', 'sir-2'] }]);
});

t.test('fleets without spot capacity cost no spot request call', async (t) => {
  const { asg, ec2, provider } = setup();
  asg.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [asgGroup('asg-a', 'a', { DesiredCapacity: 1, Instances: [asgInstance('i-1')] })],
  });
  asg.on(DescribePoliciesCommand).resolves({ ScalingPolicies: [] });
  ec2
    .on(DescribeInstancesCommand)
    .resolves({ Reservations: [{ Instances: [ec2Instance('i-1', { fleet: 'a' })] }] });
  await provider.observe([ref('a')]);
  t.equal(ec2.commandCalls(DescribeSpotInstanceRequestsCommand).length, 0);
});
