/**
 * AWS API pressure through the real binary: throttled calls are retried with backoff (also a
 * create, which must not run twice), throttling on every attempt ends in a clear
 * PROVIDER_THROTTLED error with exit 1, and the calls per observe do not grow with the number of
 * fleets (1 vs 20 fleets cost the same).
 */
import t from 'tap';
import { assertCleanTraffic, awsFleetYaml, awsWorkspace } from './fixtures/workspace.js';

t.test('throttled calls are retried; throttling on every attempt is PROVIDER_THROTTLED', async (t) => {
  const ws = await awsWorkspace(t, { pendingMs: 0 });
  const { fake } = ws;
  await ws.writeFleet('alpha', awsFleetYaml('alpha', { endpoint: fake.url, maxInstances: 2, idleCount: 1 }));

  fake.throttle(2, { service: 'ec2' });
  fake.throttle(1, { action: 'DescribeAutoScalingGroups' });
  fake.throttle(2, { action: 'CreateAutoScalingGroup' });
  fake.throttle(1, { action: 'SetDesiredCapacity' });
  const apply = await ws.cli(['apply', '--auto-approve']);
  t.equal(apply.code, 0, `${apply.stdout}\n${apply.stderr}`);
  const throttled = fake.calls.filter((c) => c.error !== undefined);
  t.same(
    throttled.map((c) => `${c.action}:${c.error}:${c.status}`),
    [
      'DescribeInstances:RequestLimitExceeded:503',
      'DescribeInstances:RequestLimitExceeded:503',
      'DescribeAutoScalingGroups:Throttling:400',
      'CreateAutoScalingGroup:Throttling:400',
      'CreateAutoScalingGroup:Throttling:400',
      'SetDesiredCapacity:Throttling:400',
    ],
  );
  t.equal(
    fake.calls.filter((c) => c.action === 'CreateAutoScalingGroup' && c.status === 200).length,
    1,
    'the group was created once',
  );
  t.match(fake.group('runfleet-alpha'), { desired: 1, suspendedProcesses: ['AZRebalance'] });

  const mark = fake.calls.length;
  fake.throttle(1000, { action: 'DescribeInstances' });
  const plan = await ws.cli(['plan']);
  t.equal(plan.code, 1);
  t.match(
    plan.stderr,
    /Error: AWS throttled ec2:DescribeInstances after 5 attempts \(RequestLimitExceeded\)/,
  );
  t.match(plan.stderr, /hint: runfleet backs off and retries/);
  t.notMatch(plan.stderr, /Internal error|AKID|e2e-secret/);
  t.equal(fake.count('DescribeInstances', mark), 5, 'five attempts, then it gives up');
  assertCleanTraffic(t, fake);
});

/** Adopted groups already in the managed shape, each with one running instance. */
function seedFleets(ws: Awaited<ReturnType<typeof awsWorkspace>>, from: number, to: number) {
  for (let i = from; i < to; i++) {
    ws.fake.seedGroup({
      name: `pool-${i}`,
      maxSize: 2,
      desired: 1,
      newInstancesProtectedFromScaleIn: true,
      suspendedProcesses: ['AZRebalance'],
      tags: { 'runfleet:fleet': `f${i}`, 'runfleet:lifecycle': 'adopted' },
    });
  }
  ws.fake.settle();
  return Promise.all(
    Array.from({ length: to - from }, (_v, k) =>
      ws.writeFleet(
        `f${from + k}`,
        awsFleetYaml(`f${from + k}`, {
          endpoint: ws.fake.url,
          adopt: `pool-${from + k}`,
          maxInstances: 2,
          idleCount: 1,
        }),
      ),
    ),
  );
}

t.test('AWS calls per observe do not grow with the number of fleets', async (t) => {
  const ws = await awsWorkspace(t, { pendingMs: 0 });
  const { fake } = ws;
  await seedFleets(ws, 0, 1);
  let mark = fake.calls.length;
  const one = await ws.cli(['plan']);
  t.equal(one.code, 0, one.stderr);
  const oneFleet = fake.countByAction(mark);

  await seedFleets(ws, 1, 20);
  mark = fake.calls.length;
  const twenty = await ws.cli(['plan']);
  t.equal(twenty.code, 0, twenty.stderr);
  t.equal((twenty.stdout.match(/fleet\.f\d+ will be created/g) ?? []).length, 20, 'all 20 fleets planned');
  const twentyFleets = fake.countByAction(mark);

  t.same(twentyFleets, oneFleet, '20 fleets cost the same calls as 1');
  // One batched observe (instances by tag, groups by name, policies) plus one orphan discovery.
  t.same(oneFleet, { DescribeInstances: 1, DescribeAutoScalingGroups: 2, DescribePolicies: 1 });
  assertCleanTraffic(t, fake);
});
