/**
 * AWS observations through the planner and renderer: the rendered plans an operator sees for AWS
 * changes (a new owned group, drifted prerequisites of an adopted group, ownership conflicts,
 * scaling policies and orphans), snapshotted.
 */
import t from 'tap';
import { DescribeAutoScalingGroupsCommand, DescribePoliciesCommand } from '@aws-sdk/client-auto-scaling';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { groupRefFor } from '../../../src/model/group.js';
import { planFleets, renderPlan } from '../../../src/plan/index.js';
import { OWNED_CREATE, asgGroup, asgInstance, awsFleet, ec2Instance, setup } from './fixtures/aws.js';

t.test('rendered plan for AWS changes', async (t) => {
  const { asg, ec2, provider } = setup();
  const fleets = [
    awsFleet('build', { create: OWNED_CREATE, max_instances: 8 }),
    awsFleet('deploy', { group: 'ci-deploy', max_instances: 4 }),
    awsFleet('docs', { group: 'ci-docs' }),
  ];
  asg.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [
      asgGroup('ci-deploy', undefined, {
        MinSize: 1,
        MaxSize: 10,
        DesiredCapacity: 1,
        CapacityRebalance: true,
        SuspendedProcesses: [],
        Instances: [asgInstance('i-deploy1')],
      }),
      asgGroup('ci-docs', 'website'),
    ],
  });
  asg.on(DescribePoliciesCommand).resolves({
    ScalingPolicies: [{ AutoScalingGroupName: 'ci-deploy', PolicyName: 'cpu50' }],
  });
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [
      {
        Instances: [
          ec2Instance('i-deploy1', { group: 'ci-deploy' }),
          ec2Instance('i-stray', { fleet: 'deploy' }),
        ],
      },
    ],
  });
  const groups = await provider.observe(fleets.map(groupRefFor));
  const groupChanges = Object.fromEntries(
    fleets.map((spec) => [
      spec.name,
      provider.diffGroup(
        spec,
        groups.find((g) => g.ref.name === groupRefFor(spec).name),
      ),
    ]),
  );
  const plan = planFleets({
    desired: fleets.map((spec) => ({ spec, source: { file: `fleets/${spec.name}.yaml`, line: 1 } })),
    observed: { fleets: [], groups, ledger: [], demand: {} },
    now: new Date('2026-03-01T12:00:00Z'),
    basis: { observed: 'obs', fleets: 'fl' },
    groupChanges,
  });
  t.ok(plan.errored, 'policies and a foreign owner make the plan unappliable');
  t.matchSnapshot(renderPlan(plan, { format: 'text', color: false }), 'text');
});
