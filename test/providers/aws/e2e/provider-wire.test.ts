/**
 * The AWS provider through the real SDK clients (SigV4 signing, awsQuery/ec2Query/JSON
 * serialisation, XML parsing, paging) against the fake AWS endpoint, in process: every provider
 * method once, with assertions on the fake's state rather than on mocked calls.
 */
import t, { type Test } from 'tap';
import type { Fleet } from '../../../../src/model/fleet.js';
import { groupRefFor } from '../../../../src/model/group.js';
import { AutoScalingClient, DeleteAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { awsErrorCode, classifyAwsError } from '../../../../src/providers/aws/errors.js';
import {
  createAwsProvider,
  toFleetError,
  type AwsProviderOptions,
} from '../../../../src/providers/aws/index.js';
import { startFakeAws, interruptSpot, type FakeAws } from '../../../helpers/fake-aws/index.js';
import { fleetSpec } from '../../../helpers/fake-state.js';

const credentials = { accessKeyId: 'AKIDWIRETEST', secretAccessKey: 'wire-secret' };

async function fakeAws(t: Test, opts: Parameters<typeof startFakeAws>[0] = {}): Promise<FakeAws> {
  const fake = await startFakeAws({ pendingMs: 0, ...opts });
  t.teardown(() => fake.close());
  return fake;
}

/** Ends every test: the fake saw only signed requests and had no bug of its own. */
function assertClean(t: Test, fake: FakeAws): void {
  t.same(fake.internalErrors, [], 'the fake endpoint raised no internal error');
  t.same(fake.unsigned, [], 'every request was signed');
}

function provider(fake: FakeAws, extra: Partial<AwsProviderOptions> = {}) {
  return createAwsProvider({
    region: 'eu-west-1',
    endpoint: fake.url,
    credentials,
    // Backoff without waiting: the retry layer itself is covered by unit tests.
    sleep: async () => {},
    ...extra,
  });
}

function ownedFleet(name: string, extra: Partial<Fleet> = {}, instanceTypes?: string[]): Fleet {
  return fleetSpec({
    name,
    max_instances: 5,
    ...extra,
    provider: {
      type: 'aws',
      region: 'eu-west-1',
      create: {
        launch_template: { name: 'runner-lt', version: '$Latest' },
        subnets: ['subnet-0bb', 'subnet-0aa'],
        ...(instanceTypes
          ? {
              instance_types: instanceTypes,
              on_demand_base_capacity: 1,
              on_demand_percentage_above_base_capacity: 0,
            }
          : {}),
      },
    },
  });
}

t.test('owned group: create, observe, increase, decrease, delete through the wire', async (t) => {
  const fake = await fakeAws(t);
  const p = provider(fake);
  const fleet = ownedFleet('wire');
  const ref = groupRefFor(fleet);
  await p.applyGroup(fleet);
  t.match(fake.group('runfleet-wire'), {
    minSize: 0,
    maxSize: 5,
    desired: 0,
    newInstancesProtectedFromScaleIn: true,
    capacityRebalance: false,
    suspendedProcesses: ['AZRebalance'],
    vpcZoneIdentifier: 'subnet-0aa,subnet-0bb',
    launchTemplate: { name: 'runner-lt', version: '$Latest' },
    tags: {
      'runfleet:fleet': { value: 'wire', propagate: true },
      'runfleet:lifecycle': { value: 'owned', propagate: true },
    },
  });
  t.notOk(fake.group('runfleet-wire')?.mixed);

  // Re-applying an unchanged fleet writes nothing: observed settings round-trip through the XML.
  const before = fake.calls.length;
  await p.applyGroup(fleet);
  t.same(fake.countByAction(before), { DescribeAutoScalingGroups: 1 }, 'idempotent apply only reads');
  const [empty] = await p.observe([ref]);
  t.match(empty, { exists: true, instances: [], requested: 0 });

  t.equal(await p.increase(ref, 2), 2);
  const [grown] = await p.observe([ref]);
  t.equal(grown?.instances.length, 2);
  t.ok(
    grown?.instances.every((i) => /^10\.\d+\.\d+\.\d+$/.test(i.internal_addr ?? '')),
    'private 10.x addresses',
  );
  t.ok(grown?.instances.every((i) => i.state === 'running' && i.healthy));
  t.equal(grown?.requested, 0);
  const view = fake.group('runfleet-wire')!;
  t.ok(
    view.instances.every(
      (i) => i.tags['runfleet:fleet'] === 'wire' && i.tags['aws:autoscaling:groupName'] === 'runfleet-wire',
    ),
    'tags propagated to instances',
  );
  t.ok(view.instances.every((i) => i.protectedFromScaleIn));

  // increase is capped at MaxSize, as the API would refuse more.
  t.equal(await p.increase(ref, 10), 3);
  t.equal(fake.group('runfleet-wire')?.desired, 5);

  const ids = fake.group('runfleet-wire')!.instances.map((i) => i.id);
  const removed = await p.decrease(ref, [ids[0]!, ids[1]!, 'i-00000000000000bad']);
  t.same(removed.sort(), [ids[0]!, ids[1]!, 'i-00000000000000bad'].sort(), 'unknown ids count as removed');
  t.equal(fake.group('runfleet-wire')?.desired, 3, 'terminate decremented the desired capacity once each');
  t.equal(fake.count('TerminateInstanceInAutoScalingGroup'), 2);

  t.ok(await p.heartbeat(ref, ids[2]!));
  const info = await p.connectInfo(ref, ids[2]!);
  t.match(info, { id: ids[2], address: /^10\./, port: 22, username: 'runner', protocol: 'ssh' });
  t.match(info.privateKey, /BEGIN OPENSSH PRIVATE KEY/);
  t.match(fake.world.sshKeys, [{ instanceId: ids[2], osUser: 'runner', publicKey: /^ssh-ed25519 / }]);

  await t.rejects(p.deleteGroup(ref, fleet), { code: 'PROVIDER', message: /still has 3 instance/ });
  await p.decrease(ref, ids.slice(2));
  await p.deleteGroup(ref, fleet);
  t.equal(fake.group('runfleet-wire'), undefined, 'owned group deleted once empty');
  t.ok(fake.calls.every((c) => c.accessKeyId === 'AKIDWIRETEST' && c.region === 'eu-west-1'));
  assertClean(t, fake);
});

t.test('lowering max_instances below the instance count, then removing the extra instances', async (t) => {
  const fake = await fakeAws(t);
  const p = provider(fake);
  const ref = groupRefFor(ownedFleet('shrink'));
  await p.applyGroup(ownedFleet('shrink', { max_instances: 3 }));
  await p.increase(ref, 3);
  const ids = fake.group('runfleet-shrink')!.instances.map((i) => i.id);
  // UpdateAutoScalingGroup lowers the desired capacity with MaxSize; protected instances stay.
  await p.applyGroup(ownedFleet('shrink', { max_instances: 1 }));
  t.match(fake.group('runfleet-shrink'), { maxSize: 1, desired: 1 });
  t.equal(fake.group('runfleet-shrink')?.instances.length, 3);

  t.same(await p.decrease(ref, ids.slice(0, 2)), ids.slice(0, 2));
  t.match(fake.group('runfleet-shrink'), { desired: 1 }, 'not decremented a second time');
  t.same(
    fake.group('runfleet-shrink')?.instances.map((i) => i.id),
    [ids[2]],
  );
  t.same(await p.decrease(ref, [ids[2]!]), [ids[2]], 'the last one can still be removed');
  t.match(fake.group('runfleet-shrink'), { desired: 0, instances: [] });
  t.same(
    fake.calls.filter((c) => c.error).map((c) => `${c.action}:${c.error}`),
    [],
    'no call was refused',
  );
  assertClean(t, fake);
});

t.test('a terminate that took effect but answered 500 is not repeated', async (t) => {
  for (const terminateMs of [0, 60_000]) {
    const fake = await fakeAws(t, { terminateMs });
    const p = provider(fake);
    const fleet = ownedFleet('ambiguous');
    const ref = groupRefFor(fleet);
    await p.applyGroup(fleet);
    await p.increase(ref, 3);
    const ids = fake.group('runfleet-ambiguous')!.instances.map((i) => i.id);
    fake.failWithServerError(1, { action: 'TerminateInstanceInAutoScalingGroup' }, { afterEffect: true });
    const first = await p.decrease(ref, ids.slice(0, 2));
    t.same(first, [ids[1]], `terminateMs ${terminateMs}: the ambiguous id is not reported removed`);
    t.equal(fake.count('TerminateInstanceInAutoScalingGroup'), 2, 'the 500 was not retried blindly');
    const again = await p.decrease(ref, [ids[0]!]);
    t.same(again, [ids[0]], 'the retry re-reads and finds it gone or terminating');
    t.equal(fake.count('TerminateInstanceInAutoScalingGroup'), 2, 'and does not terminate it twice');
    t.equal(fake.group('runfleet-ambiguous')?.desired, 1, 'desired decremented exactly twice');
    assertClean(t, fake);
  }
});

t.test('mixed instances policy and spot interruption', async (t) => {
  const fake = await fakeAws(t);
  const p = provider(fake);
  const fleet = ownedFleet('spot', {}, ['m7i.large', 'm6i.large']);
  const ref = groupRefFor(fleet);
  await p.applyGroup(fleet);
  t.match(fake.group('runfleet-spot')?.mixed, {
    launchTemplate: { name: 'runner-lt' },
    overrides: ['m7i.large', 'm6i.large'],
    distribution: {
      onDemandBase: 1,
      onDemandPercentage: 0,
      spotAllocationStrategy: 'price-capacity-optimized',
    },
  });
  const before = fake.calls.length;
  await p.applyGroup(fleet);
  t.same(fake.countByAction(before), { DescribeAutoScalingGroups: 1 }, 'mixed settings round-trip');
  await p.increase(ref, 3);
  const [g] = await p.observe([ref]);
  t.same(
    g?.instances.map((i) => i.lifecycle),
    ['on-demand', 'spot', 'spot'],
  );
  const spot = g!.instances[1]!.id;
  interruptSpot(fake.world, spot);
  const [after] = await p.observe([ref]);
  t.same(
    after?.instances.filter((i) => i.interrupting).map((i) => i.id),
    [spot],
  );
  t.ok(fake.count('DescribeSpotInstanceRequests') >= 1);
  assertClean(t, fake);
});

t.test('adopted group: settings, scaling policies, release keeps the group', async (t) => {
  const fake = await fakeAws(t);
  fake.seedGroup({ name: 'ci-pool', maxSize: 10, desired: 0, tags: { team: 'ci' } });
  fake.setPolicies('ci-pool', ['cpu-target']);
  const p = provider(fake);
  const fleet = fleetSpec({
    name: 'adopted',
    max_instances: 4,
    provider: { type: 'aws', region: 'eu-west-1', auto_scaling_group: 'ci-pool' },
  });
  const ref = groupRefFor(fleet);
  const [first] = await p.observe([ref]);
  t.match(first?.diagnostics, [
    { severity: 'error', code: 'GROUP_HAS_SCALING_POLICIES', message: /cpu-target/ },
  ]);
  await p.applyGroup(fleet);
  t.match(fake.group('ci-pool'), {
    maxSize: 4,
    newInstancesProtectedFromScaleIn: true,
    suspendedProcesses: ['AZRebalance'],
    tags: {
      team: { value: 'ci' },
      'runfleet:fleet': { value: 'adopted' },
      'runfleet:lifecycle': { value: 'adopted' },
    },
  });
  await p.deleteGroup(ref, fleet);
  const released = fake.group('ci-pool');
  t.ok(released, 'an adopted group is never deleted');
  t.same(Object.keys(released!.tags), ['team'], "only runfleet's tags were removed");
  t.equal(fake.count('DeleteAutoScalingGroup'), 0);
  assertClean(t, fake);
});

t.test('paging: many groups and instances come back complete', async (t) => {
  const fake = await fakeAws(t);
  const refs = [];
  for (let i = 0; i < 120; i++) {
    const name = `pool-${i}`;
    fake.seedGroup({
      name,
      maxSize: 20,
      desired: 10,
      tags: { 'runfleet:fleet': `f${i}`, 'runfleet:lifecycle': 'adopted' },
    });
    refs.push({ fleet: `f${i}`, provider: 'aws' as const, name });
  }
  const p = provider(fake);
  const groups = await p.observe(refs);
  t.equal(groups.length, 120);
  t.ok(
    groups.every((g) => g.exists && g.instances.length === 10 && g.instances.every((i) => i.internal_addr)),
  );
  t.same(
    fake.countByAction(),
    {
      DescribeInstances: 2,
      DescribeAutoScalingGroups: 2,
      DescribePolicies: 1,
    },
    '1200 instances: two pages of 1000; 120 groups: two calls of 100 names',
  );
  t.equal((await p.discover()).length, 120, 'discover pages through every tagged group');
  assertClean(t, fake);
});

t.test('AWS_ENDPOINT_URL routes all three clients, Instance Connect included', async (t) => {
  const fake = await fakeAws(t);
  const saved = { ...process.env };
  t.teardown(() => {
    process.env = saved;
  });
  for (const key of Object.keys(process.env)) if (key.startsWith('AWS_')) delete process.env[key];
  process.env.AWS_ENDPOINT_URL = fake.url;
  process.env.AWS_ACCESS_KEY_ID = 'AKIDFROMENVWIRE';
  process.env.AWS_SECRET_ACCESS_KEY = 'env-secret';
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  const p = createAwsProvider({ region: 'eu-west-1', sleep: async () => {} });
  const fleet = ownedFleet('env');
  const ref = groupRefFor(fleet);
  await p.applyGroup(fleet);
  await p.increase(ref, 1);
  const [g] = await p.observe([ref]);
  const id = g!.instances[0]!.id;
  // Throttling on the JSON protocol is recognised and retried like the query protocols'.
  fake.throttle(1, { service: 'ec2-instance-connect' });
  const info = await p.connectInfo(ref, id);
  t.equal(info.address, fake.world.instances.get(id)?.privateIp);
  t.match(fake.world.sshKeys, [{ instanceId: id, osUser: 'runner' }]);
  t.same(
    fake.calls.filter((c) => c.service === 'ec2-instance-connect').map((c) => c.error ?? c.status),
    ['ThrottlingException', 200],
  );
  t.ok(
    fake.calls.every((c) => c.accessKeyId === 'AKIDFROMENVWIRE'),
    'credentials from the env chain',
  );
  fake.world.instances.get(id)!.ec2State = 'shutting-down';
  await t.rejects(p.connectInfo(ref, id), { code: 'PROVIDER', message: /not running/ });
  assertClean(t, fake);
});

t.test('errors: throttling is retried, exhausted throttling and 500s surface as FleetErrors', async (t) => {
  const fake = await fakeAws(t);
  const p = provider(fake);
  const ref = { fleet: 'x', provider: 'aws' as const, name: 'runfleet-x' };
  fake.throttle(2, { service: 'ec2' });
  fake.throttle(1, { service: 'autoscaling' });
  const [g] = await p.observe([ref]);
  t.equal(g?.exists, false);
  t.same(
    fake.calls.map((c) => `${c.action}:${c.error ?? c.status}`),
    [
      'DescribeInstances:RequestLimitExceeded',
      'DescribeInstances:RequestLimitExceeded',
      'DescribeInstances:200',
      'DescribeAutoScalingGroups:Throttling',
      'DescribeAutoScalingGroups:200',
    ],
  );
  fake.throttle(5, { action: 'DescribeInstances' });
  await t.rejects(p.observe([ref]), {
    code: 'PROVIDER_THROTTLED',
    retryable: true,
    message: /RequestLimitExceeded/,
  });
  fake.failWithServerError(5, { action: 'DescribeInstances' });
  await t.rejects(p.observe([ref]), { code: 'PROVIDER', retryable: true, message: /InternalError/ });
  await t.rejects(p.increase(ref, 1), { code: 'PROVIDER', message: /does not exist/ });
  await t.rejects(
    p.applyGroup(
      fleetSpec({ name: 'y', provider: { type: 'aws', region: 'eu-west-1', auto_scaling_group: 'nope' } }),
    ),
    { code: 'PROVIDER', message: /does not exist/ },
  );
  assertClean(t, fake);
});

t.test('error codes as the SDK parses them off the wire: AlreadyExists, ResourceInUse', async (t) => {
  // The SDK names a modeled Auto Scaling error after its shape (AlreadyExistsFault) and keeps the
  // code AWS sent (AlreadyExists) in `Code`; runfleet must read the code, as AWS documents it.
  const fake = await fakeAws(t);
  const p = provider(fake);
  const fleet = ownedFleet('retried');
  // The create goes through but its answer is lost: the retry finds the group it made itself.
  fake.failWithServerError(1, { action: 'CreateAutoScalingGroup' }, { afterEffect: true });
  await p.applyGroup(fleet);
  t.same(
    fake.calls
      .filter((c) => c.action !== 'DescribeAutoScalingGroups')
      .map((c) => `${c.action}:${c.error ?? c.status}`),
    [
      'CreateAutoScalingGroup:InternalFailure',
      'CreateAutoScalingGroup:AlreadyExists',
      'SuspendProcesses:200',
    ],
    'the AlreadyExists answer to the resent create continues as an update of the group',
  );
  t.match(fake.group('runfleet-retried'), { suspendedProcesses: ['AZRebalance'], maxSize: 5 });

  // Deleting a group that still has instances: ResourceInUse, which the retry layer waits out.
  await p.increase(groupRefFor(fleet), 1);
  const raw = new AutoScalingClient({ region: 'eu-west-1', endpoint: fake.url, credentials, maxAttempts: 1 });
  const inUse = await raw
    .send(new DeleteAutoScalingGroupCommand({ AutoScalingGroupName: 'runfleet-retried', ForceDelete: false }))
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  t.equal(awsErrorCode(inUse), 'ResourceInUse');
  t.equal(classifyAwsError(inUse), 'transient');
  t.equal(toFleetError(inUse, { service: 'autoscaling', action: 'DeleteAutoScalingGroup' }).retryable, true);

  // A group of that name that runfleet did not create: refused with the hint to adopt it.
  fake.seedGroup({ name: 'runfleet-taken', maxSize: 2 });
  const [taken] = await p.observe([groupRefFor(ownedFleet('taken'))]);
  t.equal(taken?.exists, true);
  await t.rejects(p.applyGroup(ownedFleet('taken')), {
    code: 'PROVIDER',
    message: /runfleet did not create it/,
  });
  assertClean(t, fake);
});
