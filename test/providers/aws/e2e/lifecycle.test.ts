/**
 * The whole life of AWS fleets through the real runfleet binary and the real SDK clients against
 * the fake endpoint: validate, plan, create (owned group) with the managed settings, no changes
 * while instances are requested / Pending / InService, an in-place update, adopting an operator's
 * group, and removing the fleet files (owned group deleted, adopted group released).
 * Launches and boots are held by the fake (1 h) and released by the test, so nothing races.
 */
import t from 'tap';
import { assertCleanTraffic, awsFleetYaml, awsWorkspace } from './fixtures/workspace.js';

const HOUR = 3_600_000;

t.test('create, converge, update, adopt, remove', async (t) => {
  const ws = await awsWorkspace(t, { pendingMs: HOUR, launchDelayMs: HOUR });
  const { fake } = ws;
  await ws.writeFleet('alpha', awsFleetYaml('alpha', { endpoint: fake.url, maxInstances: 4, idleCount: 2 }));

  const validated = await ws.cli(['validate']);
  t.equal(validated.code, 0, validated.stderr);
  t.equal(fake.calls.length, 0, 'validate never calls AWS');

  const plan = await ws.cli(['plan']);
  t.equal(plan.code, 0, plan.stderr);
  t.match(plan.stdout, /# fleet\.alpha will be created/);
  for (const line of [
    /\+ group\.min_size\s+= 0/,
    /\+ group\.max_size\s+= 4/,
    /\+ group\.new_instances_protected_from_scale_in = true/,
    /\+ group\.capacity_rebalance\s+= false/,
    /\+ group\.suspended_processes\s+= \["AZRebalance"\]/,
    /\+ group\.tags\s+= \{ runfleet:fleet = "alpha", runfleet:lifecycle = "owned" \}/,
    /\+ group\.launch_template_name\s+= "runner-lt"/,
    /\+ group\.subnets\s+= \["subnet-0aa", "subnet-0bb"\]/,
    /instances = 0 -> 2/,
  ])
    t.match(plan.stdout, line);
  t.ok(
    fake.calls.every((c) => c.action.startsWith('Describe')),
    'plan only reads: ' + [...new Set(fake.calls.map((c) => c.action))].join(', '),
  );

  let mark = fake.calls.length;
  const applied = await ws.cli(['apply', '--auto-approve']);
  t.equal(applied.code, 0, applied.stderr);
  t.match(applied.stdout, /fleet\.alpha: configure: set up aws group runfleet-alpha/);
  t.match(applied.stdout, /fleet\.alpha: increase: requested 2 instance\(s\)/);
  t.match(applied.stdout, /Apply complete!/);
  t.match(fake.group('runfleet-alpha'), {
    minSize: 0,
    maxSize: 4,
    desired: 2,
    newInstancesProtectedFromScaleIn: true,
    capacityRebalance: false,
    suspendedProcesses: ['AZRebalance'],
    vpcZoneIdentifier: 'subnet-0aa,subnet-0bb',
    launchTemplate: { name: 'runner-lt', version: '$Latest' },
    tags: {
      'runfleet:fleet': { value: 'alpha', propagate: true },
      'runfleet:lifecycle': { value: 'owned', propagate: true },
    },
    instances: [],
  });
  const writes = fake.countByAction(mark);
  t.match(writes, { CreateAutoScalingGroup: 1, SuspendProcesses: 1, SetDesiredCapacity: 1 });
  t.notOk(writes.UpdateAutoScalingGroup, 'a new group needs no update');

  // Requested but not launched yet: the desired capacity counts, nothing is asked twice.
  const requested = await ws.cli(['plan', '--detailed-exitcode']);
  t.equal(requested.code, 0, `no changes while the group has not launched yet\n${requested.stdout}`);
  t.match(requested.stdout, /No changes/);

  fake.launchNow();
  t.same(
    fake.group('runfleet-alpha')?.instances.map((i) => [i.lifecycle, i.ec2State]),
    [
      ['Pending', 'pending'],
      ['Pending', 'pending'],
    ],
  );
  const pending = await ws.cli(['plan', '--detailed-exitcode']);
  t.equal(pending.code, 0, `no changes while instances are Pending\n${pending.stdout}`);

  fake.settle();
  const group = fake.group('runfleet-alpha')!;
  t.ok(
    group.instances.every(
      (i) =>
        i.lifecycle === 'InService' &&
        i.protectedFromScaleIn &&
        /^10\./.test(i.privateIp) &&
        i.tags['runfleet:fleet'] === 'alpha' &&
        i.tags['aws:autoscaling:groupName'] === 'runfleet-alpha',
    ),
    'instances are in service, protected, tagged, on private 10.x addresses',
  );
  const running = await ws.cli(['plan', '--detailed-exitcode']);
  t.equal(running.code, 0, `no changes once InService\n${running.stdout}`);
  const ids = group.instances.map((i) => i.id);

  // An edit of max_instances is an in-place update of MaxSize only.
  await ws.writeFleet('alpha', awsFleetYaml('alpha', { endpoint: fake.url, maxInstances: 6, idleCount: 2 }));
  const edit = await ws.cli(['plan', '--detailed-exitcode']);
  t.equal(edit.code, 2, edit.stderr);
  t.match(edit.stdout, /# fleet\.alpha will be updated in-place/);
  t.match(edit.stdout, /~ group\.max_size\s+= 4 -> 6/);
  mark = fake.calls.length;
  const update = await ws.cli(['apply', '--auto-approve']);
  t.equal(update.code, 0, update.stderr);
  const updateCalls = fake.countByAction(mark);
  t.equal(updateCalls.UpdateAutoScalingGroup, 1);
  for (const action of [
    'CreateAutoScalingGroup',
    'SuspendProcesses',
    'CreateOrUpdateTags',
    'SetDesiredCapacity',
  ])
    t.notOk(updateCalls[action], `${action} not called by an update of max_instances`);
  t.match(fake.group('runfleet-alpha'), { maxSize: 6, desired: 2 });
  t.same(
    fake.group('runfleet-alpha')?.instances.map((i) => i.id),
    ids,
    'instances kept across the update',
  );

  // An operator's group, adopted: its managed settings change, its own tag stays.
  fake.seedGroup({ name: 'ci-pool', maxSize: 10, desired: 1, tags: { team: 'ci' } });
  fake.settle();
  const operatorInstance = fake.group('ci-pool')!.instances[0]!.id;
  await ws.writeFleet(
    'pool',
    awsFleetYaml('pool', { endpoint: fake.url, adopt: 'ci-pool', maxInstances: 3, idleCount: 1 }),
  );
  const adoptPlan = await ws.cli(['plan']);
  t.equal(adoptPlan.code, 0, adoptPlan.stderr);
  t.match(adoptPlan.stdout, /~ group\.max_size\s+= 10 -> 3/);
  t.match(adoptPlan.stdout, /~ group\.new_instances_protected_from_scale_in = false -> true/);
  t.match(adoptPlan.stdout, /~ group\.suspended_processes\s+= \[\] -> \["AZRebalance"\]/);
  const adopt = await ws.cli(['apply', '--auto-approve']);
  t.equal(adopt.code, 0, adopt.stderr);
  t.match(fake.group('ci-pool'), {
    maxSize: 3,
    newInstancesProtectedFromScaleIn: true,
    suspendedProcesses: ['AZRebalance'],
    tags: {
      team: { value: 'ci' },
      'runfleet:fleet': { value: 'pool' },
      'runfleet:lifecycle': { value: 'adopted' },
    },
  });
  t.ok(
    fake.group('ci-pool')?.instances.some((i) => i.id === operatorInstance),
    "the group's running instance is kept",
  );
  fake.settle();
  const adopted = await ws.cli(['plan', '--detailed-exitcode']);
  t.equal(adopted.code, 0, `adopted group converged\n${adopted.stdout}`);

  // Removing the files: owned group emptied and deleted, adopted group released, never deleted.
  await ws.removeFleet('alpha');
  await ws.removeFleet('pool');
  const destroyPlan = await ws.cli(['plan']);
  t.equal(destroyPlan.code, 0, destroyPlan.stderr);
  t.match(destroyPlan.stdout, /# fleet\.alpha will be destroyed/);
  t.match(destroyPlan.stdout, /# fleet\.pool will be destroyed/);
  mark = fake.calls.length;
  const destroy = await ws.cli(['apply', '--auto-approve']);
  t.equal(destroy.code, 0, `${destroy.stdout}\n${destroy.stderr}`);
  t.equal(fake.group('runfleet-alpha'), undefined, 'owned group deleted');
  for (const id of ids) t.equal(fake.world.instances.get(id)?.ec2State, 'terminated', `${id} terminated`);
  const pool = fake.group('ci-pool');
  t.ok(pool, 'adopted group still exists');
  t.same(Object.keys(pool?.tags ?? {}), ['team'], "only runfleet's tags removed from the adopted group");
  const destroyCalls = fake.countByAction(mark);
  t.equal(destroyCalls.DeleteAutoScalingGroup, 1, 'one delete: the owned group');
  t.ok(
    fake.calls.slice(mark).filter((c) => c.action === 'DeleteAutoScalingGroup').length === 1 &&
      fake.calls.slice(mark).every((c) => c.action !== 'DeleteAutoScalingGroup' || c.status === 200),
  );
  t.equal(destroyCalls.DeleteTags, 1, 'the adopted group is released');
  // The plan showed `instances = 1 -> 0` for the removed fleet: its instances go, the group stays.
  t.match(pool, { desired: 0, instances: [] });
  t.equal(fake.world.instances.get(operatorInstance)?.ec2State, 'terminated');

  const after = await ws.cli(['plan', '--detailed-exitcode']);
  t.equal(after.code, 0, after.stdout);
  t.match(after.stdout, /No changes/);
  t.notMatch(after.stdout + after.stderr, /ORPHAN_GROUP/, 'a released group is no orphan');
  assertCleanTraffic(t, fake);
});
