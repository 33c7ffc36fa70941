/**
 * The AWS provider through the real SDK clients against moto (test/helpers/moto.ts), an AWS
 * endpoint written independently of runfleet and of its fake (test/helpers/fake-aws): the same
 * provider methods provider-wire.test.ts runs against the fake, asserted on moto's state as read
 * back with the test's own SDK clients.
 *
 * Where moto is not AWS (moto 5.2.5; checked against the AWS API reference), the tests below say
 * so and assert only what moto does implement:
 * - launches are instant: a raised desired capacity is answered by InService / `running`
 *   instances in the same call, and a terminated instance leaves its group at once (AWS: Pending,
 *   then InService; Terminating, then Terminated). Pending/Terminating paths stay covered by the
 *   fake only.
 * - a mixed instances policy is stored and returned as sent, but moto launches every instance
 *   on demand with the launch template's instance type (AWS honours the overrides and the
 *   on-demand/spot distribution), so spot interruption is covered by the fake only.
 * - TerminateInstanceInAutoScalingGroup detaches the instance first, which removes its
 *   aws:autoscaling:groupName tag (AWS keeps a terminated instance's tags while it is listed).
 * - error paths (checked by hand against moto 5.2.5; the fake answers as the API reference
 *   documents, so these stay covered by provider-wire.test.ts): a second CreateAutoScalingGroup of
 *   the same name succeeds (AWS: AlreadyExists); DeleteAutoScalingGroup with ForceDelete false
 *   deletes a group that has instances (AWS: ResourceInUse); SetDesiredCapacity above MaxSize,
 *   SetDesiredCapacity / SuspendProcesses / CreateOrUpdateTags / DeleteTags on a missing group and
 *   TerminateInstanceInAutoScalingGroup of an unknown id answer an HTML 500 page (AWS:
 *   ValidationError); SendSSHPublicKey accepts any instance id (AWS:
 *   EC2InstanceNotFoundException). runfleet reads before it writes, so none of these is reached
 *   below.
 * - no throttling: the retry layer is covered by the fake and unit tests.
 */
import t, { type Test } from 'tap';
import { PutScalingPolicyCommand, type AutoScalingGroup } from '@aws-sdk/client-auto-scaling';
import type { Fleet } from '../../../../src/model/fleet.js';
import { groupRefFor } from '../../../../src/model/group.js';
import {
  createAwsClients,
  createAwsProvider,
  type AwsClients,
  type AwsProviderOptions,
} from '../../../../src/providers/aws/index.js';
import { fleetSpec } from '../../../helpers/fake-state.js';
import {
  createOperatorGroup,
  MOTO_CREDENTIALS,
  MOTO_REGION,
  memberIds,
  motoNetwork,
  motoOrSkip,
  startMoto,
  type Moto,
  type MotoNetwork,
} from '../../../helpers/moto.js';

/** Clients whose every command name is recorded, so a test can tell reads from writes. */
function recordingClients(moto: Moto): { clients: AwsClients; calls: string[] } {
  const calls: string[] = [];
  const clients = createAwsClients({
    region: MOTO_REGION,
    endpoint: moto.url,
    credentials: MOTO_CREDENTIALS,
  });
  type Handler = (args: unknown) => Promise<unknown>;
  interface Stack {
    add(
      mw: (next: Handler, context: { commandName?: string }) => Handler,
      opts: { step: 'initialize'; name: string },
    ): void;
  }
  for (const client of [clients.autoscaling, clients.ec2, clients.instanceConnect]) {
    (client.middlewareStack as unknown as Stack).add(
      (next, context) => (args) => {
        calls.push(String(context.commandName).replace(/Command$/, ''));
        return next(args);
      },
      { step: 'initialize', name: 'recordCalls' },
    );
  }
  return { clients, calls };
}

function provider(moto: Moto, extra: Partial<AwsProviderOptions> = {}) {
  const { clients, calls } = recordingClients(moto);
  const p = createAwsProvider({ region: MOTO_REGION, clients, sleep: async () => {}, ...extra });
  return { p, calls, countSince: (mark: number) => countOf(calls.slice(mark)) };
}

function countOf(calls: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of calls) out[c] = (out[c] ?? 0) + 1;
  return out;
}

function ownedFleet(net: MotoNetwork, name: string, extra: Partial<Fleet> = {}, instanceTypes?: string[]) {
  return fleetSpec({
    name,
    max_instances: 5,
    ...extra,
    provider: {
      type: 'aws',
      region: MOTO_REGION,
      create: {
        launch_template: { name: 'runner-lt', version: '$Latest' },
        // Out of order on purpose: runfleet sorts them, and moto returns them as sent.
        subnets: [net.subnets[1], net.subnets[0]],
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

const tagsOf = (g: AutoScalingGroup | undefined) =>
  Object.fromEntries(
    (g?.Tags ?? []).map((tag) => [tag.Key, { value: tag.Value, propagate: tag.PropagateAtLaunch }]),
  );

const server = motoOrSkip(t);
if (server) {
  const moto = await startMoto(t, server);
  const scenario = (name: string, fn: (t: Test, net: MotoNetwork) => Promise<void>) =>
    t.test(name, async (t) => {
      await moto.reset();
      await fn(t, await motoNetwork(moto));
    });

  scenario('owned group: create, observe, increase, decrease, connect, delete', async (t, net) => {
    const { p, calls, countSince } = provider(moto);
    const fleet = ownedFleet(net, 'wire');
    const ref = groupRefFor(fleet);
    await p.applyGroup(fleet);
    const created = await net.group('runfleet-wire');
    t.match(created, {
      MinSize: 0,
      MaxSize: 5,
      DesiredCapacity: 0,
      NewInstancesProtectedFromScaleIn: true,
      CapacityRebalance: false,
      LaunchTemplate: {
        LaunchTemplateName: 'runner-lt',
        LaunchTemplateId: net.launchTemplateId,
        Version: '$Latest',
      },
      VPCZoneIdentifier: [...net.subnets].sort().join(','),
    });
    t.notOk(created?.MixedInstancesPolicy);
    t.same(
      created?.SuspendedProcesses?.map((s) => s.ProcessName),
      ['AZRebalance'],
    );
    t.same(tagsOf(created), {
      'runfleet:fleet': { value: 'wire', propagate: true },
      'runfleet:lifecycle': { value: 'owned', propagate: true },
    });
    t.same(countSince(0), { DescribeAutoScalingGroups: 1, CreateAutoScalingGroup: 1, SuspendProcesses: 1 });

    // What moto reports back maps onto exactly the settings runfleet wrote: no diff, no write.
    let mark = calls.length;
    await p.applyGroup(fleet);
    t.same(countSince(mark), { DescribeAutoScalingGroups: 1 }, 'idempotent apply only reads');
    const [empty] = await p.observe([ref]);
    t.match(empty, { exists: true, instances: [], requested: 0, diagnostics: [] });
    t.same(p.diffGroup(fleet, empty).changes, [], 'the observed settings diff clean against the fleet');

    t.equal(await p.increase(ref, 2), 2);
    const [grown] = await p.observe([ref]);
    t.equal(grown?.instances.length, 2);
    t.equal(grown?.requested, 0);
    t.ok(
      grown?.instances.every(
        (i) => i.state === 'running' && i.healthy && /^10\.20\.[12]\.\d+$/.test(i.internal_addr ?? ''),
      ),
      `running, healthy, with an address in the fleet's subnets: ${JSON.stringify(grown?.instances)}`,
    );
    const ec2 = await net.instances(memberIds(await net.group('runfleet-wire')));
    for (const inst of ec2.values()) {
      const tags = Object.fromEntries((inst.Tags ?? []).map((tag) => [tag.Key, tag.Value]));
      t.match(
        tags,
        {
          'runfleet:fleet': 'wire',
          'runfleet:lifecycle': 'owned',
          'aws:autoscaling:groupName': 'runfleet-wire',
        },
        `${inst.InstanceId}: group tags propagated at launch`,
      );
    }
    t.ok(
      (await net.group('runfleet-wire'))?.Instances?.every((i) => i.ProtectedFromScaleIn),
      'instances are protected from scale-in',
    );

    // increase is capped at MaxSize, as AWS would refuse more.
    t.equal(await p.increase(ref, 10), 3);
    t.equal((await net.group('runfleet-wire'))?.DesiredCapacity, 5);

    const ids = memberIds(await net.group('runfleet-wire'));
    t.equal(ids.length, 5);
    mark = calls.length;
    const removed = await p.decrease(ref, [ids[0]!, ids[1]!, 'i-00000000000000bad']);
    t.same(
      removed.sort(),
      [ids[0]!, ids[1]!, 'i-00000000000000bad'].sort(),
      'an unknown id counts as removed',
    );
    t.equal(countSince(mark).TerminateInstanceInAutoScalingGroup, 2, 'only the two real ids are terminated');
    const shrunk = await net.group('runfleet-wire');
    t.equal(shrunk?.DesiredCapacity, 3, 'each terminate decremented the desired capacity once');
    t.same(memberIds(shrunk).sort(), ids.slice(2).sort(), 'no replacement was launched');
    const gone = await net.instances(ids.slice(0, 2));
    t.ok(
      [...gone.values()].every((i) => i.State?.Name === 'terminated'),
      'the removed instances are terminated in EC2',
    );

    t.ok(await p.heartbeat(ref, ids[2]!), 'an InService instance is alive');
    const info = await p.connectInfo(ref, ids[2]!);
    t.match(info, { id: ids[2], address: /^10\.20\./, port: 22, username: 'runner', protocol: 'ssh' });
    t.equal(info.address, (await net.instances([ids[2]!])).get(ids[2]!)?.PrivateIpAddress);
    t.match(info.privateKey, /BEGIN OPENSSH PRIVATE KEY/);
    t.ok(
      calls.includes('SendSSHPublicKey'),
      'the key went through EC2 Instance Connect, which moto accepted',
    );

    await t.rejects(p.deleteGroup(ref, fleet), { code: 'PROVIDER', message: /still has 3 instance/ });
    t.ok(await net.group('runfleet-wire'), 'not deleted while it has instances');
    await p.decrease(ref, ids.slice(2));
    t.match(await net.group('runfleet-wire'), { DesiredCapacity: 0, Instances: [] });
    await p.deleteGroup(ref, fleet);
    t.equal(await net.group('runfleet-wire'), undefined, 'owned group deleted once empty');
    const [after] = await p.observe([ref]);
    t.match(after, { exists: false, instances: [], diagnostics: [] }, 'terminated instances are no orphans');
  });

  scenario(
    'lowering max_instances below the instance count, then removing the extra instances',
    async (t, net) => {
      const { p, calls } = provider(moto);
      const ref = groupRefFor(ownedFleet(net, 'shrink'));
      await p.applyGroup(ownedFleet(net, 'shrink', { max_instances: 3 }));
      await p.increase(ref, 3);
      const ids = memberIds(await net.group('runfleet-shrink'));
      t.equal(ids.length, 3);
      // Like AWS: a MaxSize under the desired capacity lowers it; protected instances stay.
      await p.applyGroup(ownedFleet(net, 'shrink', { max_instances: 1 }));
      const lowered = await net.group('runfleet-shrink');
      t.match(lowered, { MaxSize: 1, DesiredCapacity: 1 });
      t.same(memberIds(lowered).sort(), [...ids].sort(), 'protected instances are not terminated');

      t.same(await p.decrease(ref, ids.slice(0, 2)), ids.slice(0, 2));
      t.match(await net.group('runfleet-shrink'), { DesiredCapacity: 1 }, 'not decremented a second time');
      t.same(memberIds(await net.group('runfleet-shrink')), [ids[2]]);
      t.same(await p.decrease(ref, [ids[2]!]), [ids[2]], 'the last one can still be removed');
      t.match(await net.group('runfleet-shrink'), { DesiredCapacity: 0, Instances: [] });
      t.same(
        calls.filter((c) => c === 'TerminateInstanceInAutoScalingGroup').length,
        3,
        'three terminates, none refused (moto enforces MinSize as AWS does)',
      );
    },
  );

  scenario(
    'an edit of the launch template, subnets and types is one UpdateAutoScalingGroup',
    async (t, net) => {
      const { p, calls, countSince } = provider(moto);
      const fleet = ownedFleet(net, 'edit', {}, ['m7i.large', 'm6i.large']);
      const ref = groupRefFor(fleet);
      await p.applyGroup(fleet);
      t.match((await net.group('runfleet-edit'))?.MixedInstancesPolicy, {
        LaunchTemplate: {
          LaunchTemplateSpecification: { LaunchTemplateName: 'runner-lt' },
          Overrides: [{ InstanceType: 'm7i.large' }, { InstanceType: 'm6i.large' }],
        },
        InstancesDistribution: {
          OnDemandBaseCapacity: 1,
          OnDemandPercentageAboveBaseCapacity: 0,
          SpotAllocationStrategy: 'price-capacity-optimized',
        },
      });
      let mark = calls.length;
      await p.applyGroup(fleet);
      t.same(countSince(mark), { DescribeAutoScalingGroups: 1 }, 'the mixed policy round-trips through moto');

      await p.increase(ref, 3);
      const [g] = await p.observe([ref]);
      // moto's limitation (see the top of this file): every instance on demand, the template's type.
      t.same(
        g?.instances.map((i) => i.lifecycle),
        ['on-demand', 'on-demand', 'on-demand'],
        'moto launches mixed groups on demand only',
      );
      t.ok(
        calls.includes('DescribeSpotInstanceRequests') === false,
        'no spot request read for on-demand instances',
      );

      const edited = fleetSpec({
        ...fleet,
        provider: {
          type: 'aws',
          region: MOTO_REGION,
          create: {
            launch_template: { name: 'runner-lt', version: '1' },
            subnets: [net.subnets[0]],
            instance_types: ['c7i.large'],
            on_demand_base_capacity: 0,
            on_demand_percentage_above_base_capacity: 100,
          },
        },
      });
      const [before] = await p.observe([ref]);
      t.same(
        p
          .diffGroup(edited, before)
          .changes.map((c) => c.path)
          .sort(),
        [
          'group.instance_types',
          'group.launch_template_version',
          'group.on_demand_base_capacity',
          'group.on_demand_percentage_above_base_capacity',
          'group.subnets',
        ],
      );
      mark = calls.length;
      await p.applyGroup(edited);
      t.same(countSince(mark), { DescribeAutoScalingGroups: 1, UpdateAutoScalingGroup: 1 });
      const updated = await net.group('runfleet-edit');
      t.match(updated, {
        VPCZoneIdentifier: net.subnets[0],
        MixedInstancesPolicy: {
          LaunchTemplate: {
            LaunchTemplateSpecification: { LaunchTemplateName: 'runner-lt', Version: '1' },
            Overrides: [{ InstanceType: 'c7i.large' }],
          },
          InstancesDistribution: { OnDemandBaseCapacity: 0, OnDemandPercentageAboveBaseCapacity: 100 },
        },
      });
      t.equal(memberIds(updated).length, 3, 'instances are kept across the update');
      const [converged] = await p.observe([ref]);
      t.same(p.diffGroup(edited, converged).changes, [], 'converged after one update');
    },
  );

  scenario('adopted group: scaling policies, settings, release keeps the group', async (t, net) => {
    await createOperatorGroup(net, { name: 'ci-pool', maxSize: 10, desired: 1, tags: { team: 'ci' } });
    await net.autoscaling.send(
      new PutScalingPolicyCommand({
        AutoScalingGroupName: 'ci-pool',
        PolicyName: 'cpu-target',
        PolicyType: 'TargetTrackingScaling',
        TargetTrackingConfiguration: {
          TargetValue: 50,
          PredefinedMetricSpecification: { PredefinedMetricType: 'ASGAverageCPUUtilization' },
        },
      }),
    );
    const operatorInstance = memberIds(await net.group('ci-pool'))[0]!;
    const { p, calls } = provider(moto);
    const fleet = fleetSpec({
      name: 'adopted',
      max_instances: 4,
      provider: { type: 'aws', region: MOTO_REGION, auto_scaling_group: 'ci-pool' },
    });
    const ref = groupRefFor(fleet);
    const [first] = await p.observe([ref]);
    t.match(first?.diagnostics, [
      { severity: 'error', code: 'GROUP_HAS_SCALING_POLICIES', message: /cpu-target/ },
    ]);
    t.match(first?.instances, [{ id: operatorInstance, state: 'running' }]);
    t.same(
      p
        .diffGroup(fleet, first)
        .changes.map((c) => c.path)
        .sort(),
      [
        'group.max_size',
        'group.new_instances_protected_from_scale_in',
        'group.suspended_processes',
        'group.tags',
      ],
    );
    await p.applyGroup(fleet);
    const adopted = await net.group('ci-pool');
    t.match(adopted, { MaxSize: 4, NewInstancesProtectedFromScaleIn: true });
    t.same(
      adopted?.SuspendedProcesses?.map((s) => s.ProcessName),
      ['AZRebalance'],
    );
    t.match(tagsOf(adopted), {
      team: { value: 'ci' },
      'runfleet:fleet': { value: 'adopted' },
      'runfleet:lifecycle': { value: 'adopted' },
    });
    t.same(memberIds(adopted), [operatorInstance], "the group's running instance is kept");
    t.notOk(calls.includes('CreateAutoScalingGroup'), 'an adopted group is never created');
    t.same(await p.discover(), [ref], 'discover finds the group by its runfleet tag');

    await p.deleteGroup(ref, fleet);
    const released = await net.group('ci-pool');
    t.ok(released, 'an adopted group is never deleted');
    t.same(Object.keys(tagsOf(released)), ['team'], "only runfleet's tags were removed");
    t.notOk(calls.includes('DeleteAutoScalingGroup'));
    t.same(await p.discover(), [], 'a released group is not discovered any more');
  });

  scenario("manager ids: discover filters by manager, another manager's group is refused", async (t, net) => {
    const m1 = provider(moto, { manager: 'm1' }).p;
    const m2 = provider(moto, { manager: 'm2' });
    const fleet = ownedFleet(net, 'mgr');
    const ref = groupRefFor(fleet);
    await m1.applyGroup(fleet);
    t.match(tagsOf(await net.group('runfleet-mgr')), {
      'runfleet:manager': { value: 'm1', propagate: true },
    });
    t.same(await m1.discover(), [ref]);
    t.same(await m2.p.discover(), [], "m2 does not discover m1's group");
    const [seen] = await m2.p.observe([ref]);
    t.match(seen?.diagnostics, [{ code: 'GROUP_OWNED_BY_OTHER_MANAGER' }]);
    const writesBefore = m2.calls.filter((c) => !c.startsWith('Describe')).length;
    await t.rejects(m2.p.applyGroup(fleet), { code: 'PROVIDER', message: /managed by runfleet manager m1/ });
    await t.rejects(m2.p.increase(ref, 1), { code: 'PROVIDER', message: /managed by runfleet manager m1/ });
    t.equal(m2.calls.filter((c) => !c.startsWith('Describe')).length, writesBefore, 'm2 wrote nothing');
    t.equal((await net.group('runfleet-mgr'))?.DesiredCapacity, 0);
  });

  scenario('paging: 101 groups come back complete from moto', async (t, net) => {
    const refs = [];
    for (let i = 0; i < 101; i++) {
      const name = `pool-${i}`;
      await createOperatorGroup(net, {
        name,
        maxSize: 2,
        desired: i < 2 ? 1 : 0,
        tags: { 'runfleet:fleet': `f${i}`, 'runfleet:lifecycle': 'adopted' },
      });
      refs.push({ fleet: `f${i}`, provider: 'aws' as const, name });
    }
    const { p, calls } = provider(moto);
    const groups = await p.observe(refs);
    t.equal(groups.length, 101);
    t.ok(
      groups.every((g, i) => g.exists && g.ref.name === `pool-${i}`),
      'every group found, in the order asked',
    );
    t.same(
      groups.map((g) => g.instances.length).filter((n) => n > 0),
      [1, 1],
    );
    t.ok(groups[0]?.instances[0]?.internal_addr, "an instance's address joined from EC2");
    t.equal(
      calls.filter((c) => c === 'DescribeAutoScalingGroups').length,
      2,
      '101 names: one call of 100 names and one of 1',
    );
    const discovered = await p.discover();
    t.equal(discovered.length, 101, 'discover pages through every tagged group');
  });

  scenario("refusals: missing groups, another group's instance, a terminated instance", async (t, net) => {
    const { p } = provider(moto);
    const missing = { fleet: 'x', provider: 'aws' as const, name: 'runfleet-x' };
    const [g] = await p.observe([missing]);
    t.match(g, { exists: false, instances: [] });
    await t.rejects(p.increase(missing, 1), { code: 'PROVIDER', message: /does not exist/ });
    await t.rejects(
      p.applyGroup(
        fleetSpec({ name: 'y', provider: { type: 'aws', region: MOTO_REGION, auto_scaling_group: 'nope' } }),
      ),
      { code: 'PROVIDER', message: /does not exist/ },
    );

    // Two fleets; an id of one is never handed out or removed through the other.
    const a = ownedFleet(net, 'a');
    const b = ownedFleet(net, 'b');
    await p.applyGroup(a);
    await p.applyGroup(b);
    await p.increase(groupRefFor(a), 1);
    await p.increase(groupRefFor(b), 1);
    const idA = memberIds(await net.group('runfleet-a'))[0]!;
    await t.rejects(p.connectInfo(groupRefFor(b), idA), {
      code: 'PROVIDER',
      message: /is not in Auto Scaling group runfleet-b/,
    });
    await t.rejects(p.decrease(groupRefFor(b), [idA]), {
      code: 'PROVIDER',
      message: /belongs to runfleet-a, not runfleet-b/,
    });
    t.same(memberIds(await net.group('runfleet-a')), [idA], 'the other fleet kept its instance');
    t.notOk(await p.heartbeat(groupRefFor(b), idA), "another group's instance is not alive for this one");

    await p.decrease(groupRefFor(a), [idA]);
    // A fresh provider: the heartbeat is not answered from the first one's observe cache.
    const fresh = provider(moto, { connectorFor: () => a.connector }).p;
    t.notOk(await fresh.heartbeat(groupRefFor(a), idA), 'a terminated instance is not alive');
    // AWS keeps a terminated instance's tags (so: "terminated, not running"); moto's terminate
    // detaches first and drops aws:autoscaling:groupName (so: "not in Auto Scaling group").
    // Either way no access to it is handed out.
    await t.rejects(fresh.connectInfo(groupRefFor(a), idA), {
      code: 'PROVIDER',
      message: /terminated, not running|is not in Auto Scaling group runfleet-a/,
    });
  });
}
