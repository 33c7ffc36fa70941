/**
 * The real runfleet binary against moto (test/helpers/moto.ts), the independent peer of the fake
 * that lifecycle.test.ts and watch.test.ts use: `plan` / `apply` create, converge, update, adopt
 * and remove fleets through the fleet file's `provider.endpoint`, and `runfleet watch` scales a
 * fleet up for demand and back to zero. moto launches and terminates at once (see the top of
 * moto-provider.test.ts), so the "requested but not launched" and Pending plans stay covered by
 * the fake only.
 */
import t from 'tap';
import type { AutoScalingGroup } from '@aws-sdk/client-auto-scaling';
import type { StatusReport } from '../../../../src/daemon/status.js';
import { until } from '../../../cli/helpers.js';
import {
  createOperatorGroup,
  memberIds,
  motoNetwork,
  motoOrSkip,
  startMoto,
  type MotoNetwork,
} from '../../../helpers/moto.js';
import { awsFleetYaml, cliWorkspace, startWatch, type AwsFleetOptions } from './fixtures/workspace.js';

async function ec2States(net: MotoNetwork, ids: string[]): Promise<string[]> {
  const found = await net.instances(ids);
  return ids.map((id) => found.get(id)?.State?.Name ?? 'missing');
}

const tagKeys = (g: AutoScalingGroup | undefined) => (g?.Tags ?? []).map((tag) => tag.Key).sort();

const server = motoOrSkip(t);
if (server) {
  const moto = await startMoto(t, server);

  t.test('plan and apply: create, converge, update, adopt, remove', async (t) => {
    await moto.reset();
    const net = await motoNetwork(moto);
    const ws = await cliWorkspace(t);
    const fleet = (name: string, o: Partial<AwsFleetOptions>) =>
      awsFleetYaml(name, { endpoint: moto.url, subnets: [net.subnets[1], net.subnets[0]], ...o });
    await ws.writeFleet('alpha', fleet('alpha', { maxInstances: 4, idleCount: 2 }));

    const plan = await ws.cli(['plan', '--detailed-exitcode']);
    t.equal(plan.code, 2, `${plan.stdout}\n${plan.stderr}`);
    t.match(plan.stdout, /# fleet\.alpha will be created/);
    for (const line of [
      /\+ group\.min_size\s+= 0/,
      /\+ group\.max_size\s+= 4/,
      /\+ group\.suspended_processes\s+= \["AZRebalance"\]/,
      /\+ group\.launch_template_name\s+= "runner-lt"/,
      new RegExp(`\\+ group\\.subnets\\s+= \\["${[...net.subnets].sort().join('", "')}"\\]`),
      /instances = 0 -> 2/,
    ])
      t.match(plan.stdout, line);
    t.equal(await net.group('runfleet-alpha'), undefined, 'plan changed nothing');

    const applied = await ws.cli(['apply', '--auto-approve']);
    t.equal(applied.code, 0, `${applied.stdout}\n${applied.stderr}`);
    t.match(applied.stdout, /fleet\.alpha: increase: requested 2 instance\(s\)/);
    t.match(applied.stdout, /Apply complete!/);
    const created = await net.group('runfleet-alpha');
    t.match(created, {
      MinSize: 0,
      MaxSize: 4,
      DesiredCapacity: 2,
      NewInstancesProtectedFromScaleIn: true,
      CapacityRebalance: false,
      VPCZoneIdentifier: [...net.subnets].sort().join(','),
      LaunchTemplate: { LaunchTemplateName: 'runner-lt', Version: '$Latest' },
    });
    t.same(tagKeys(created), ['runfleet:fleet', 'runfleet:lifecycle']);
    const ids = memberIds(created);
    t.equal(ids.length, 2, 'moto launched both at once');

    const converged = await ws.cli(['plan', '--detailed-exitcode']);
    t.equal(converged.code, 0, `no changes once the instances run\n${converged.stdout}\n${converged.stderr}`);
    t.match(converged.stdout, /No changes/);

    await ws.writeFleet('alpha', fleet('alpha', { maxInstances: 6, idleCount: 2 }));
    const edit = await ws.cli(['plan', '--detailed-exitcode']);
    t.equal(edit.code, 2, edit.stderr);
    t.match(edit.stdout, /# fleet\.alpha will be updated in-place/);
    t.match(edit.stdout, /~ group\.max_size\s+= 4 -> 6/);
    const update = await ws.cli(['apply', '--auto-approve']);
    t.equal(update.code, 0, update.stderr);
    const updated = await net.group('runfleet-alpha');
    t.match(updated, { MaxSize: 6, DesiredCapacity: 2 });
    t.same(memberIds(updated), ids, 'instances kept across the update');

    // An operator's group, adopted: managed settings change, its own tag and instance stay.
    await createOperatorGroup(net, { name: 'ci-pool', maxSize: 10, desired: 1, tags: { team: 'ci' } });
    const operatorInstance = memberIds(await net.group('ci-pool'))[0]!;
    await ws.writeFleet('pool', fleet('pool', { adopt: 'ci-pool', maxInstances: 3, idleCount: 1 }));
    const adoptPlan = await ws.cli(['plan']);
    t.equal(adoptPlan.code, 0, adoptPlan.stderr);
    t.match(adoptPlan.stdout, /~ group\.max_size\s+= 10 -> 3/);
    t.match(adoptPlan.stdout, /~ group\.new_instances_protected_from_scale_in = false -> true/);
    t.match(adoptPlan.stdout, /~ group\.suspended_processes\s+= \[\] -> \["AZRebalance"\]/);
    t.notMatch(adoptPlan.stdout, /instances = 1 -> /, "the operator's instance meets idle_count 1");
    const adopt = await ws.cli(['apply', '--auto-approve']);
    t.equal(adopt.code, 0, adopt.stderr);
    const pool = await net.group('ci-pool');
    t.match(pool, { MaxSize: 3, NewInstancesProtectedFromScaleIn: true });
    t.same(
      pool?.SuspendedProcesses?.map((p) => p.ProcessName),
      ['AZRebalance'],
    );
    t.same(tagKeys(pool), ['runfleet:fleet', 'runfleet:lifecycle', 'team']);
    t.same(memberIds(pool), [operatorInstance], "the group's running instance is kept");
    const adopted = await ws.cli(['plan', '--detailed-exitcode']);
    t.equal(adopted.code, 0, `adopted group converged\n${adopted.stdout}`);

    // Removing the files: owned group emptied and deleted, adopted group released.
    await ws.removeFleet('alpha');
    await ws.removeFleet('pool');
    const destroyPlan = await ws.cli(['plan']);
    t.equal(destroyPlan.code, 0, destroyPlan.stderr);
    t.match(destroyPlan.stdout, /# fleet\.alpha will be destroyed/);
    t.match(destroyPlan.stdout, /# fleet\.pool will be destroyed/);
    const destroy = await ws.cli(['apply', '--auto-approve']);
    t.equal(destroy.code, 0, `${destroy.stdout}\n${destroy.stderr}`);
    t.equal(await net.group('runfleet-alpha'), undefined, 'owned group deleted');
    t.same(await ec2States(net, ids), ['terminated', 'terminated']);
    const released = await net.group('ci-pool');
    t.ok(released, 'adopted group still exists');
    t.same(tagKeys(released), ['team'], "only runfleet's tags removed from the adopted group");
    t.match(released, { DesiredCapacity: 0, Instances: [] });
    t.same(await ec2States(net, [operatorInstance]), ['terminated']);

    const after = await ws.cli(['plan', '--detailed-exitcode']);
    t.equal(after.code, 0, after.stdout);
    t.match(after.stdout, /No changes/);
    t.notMatch(
      after.stdout + after.stderr,
      /ORPHAN/,
      'neither a released group nor terminated instances are orphans',
    );
    t.notMatch(
      [plan, applied, destroy, after].map((r) => r.stdout + r.stderr).join('\n'),
      /e2e-secret-not-real/,
      'the secret key is never printed',
    );
  });

  t.test('watch scales a fleet up for demand and back to zero', async (t) => {
    await moto.reset();
    const net = await motoNetwork(moto);
    const ws = await cliWorkspace(t);
    await ws.writeFleet(
      'burst',
      awsFleetYaml('burst', {
        endpoint: moto.url,
        subnets: [...net.subnets],
        maxInstances: 3,
        idleCount: 0,
        // Long enough for the status poll below to see the used instances before they go.
        idleTime: '5s',
      }),
    );
    const watch = await startWatch(t, ws, ['--interval', '1s', '--grace', '2s']);
    await until(
      'the daemon created the group',
      async () => (await net.group('runfleet-burst')) ?? undefined,
      15_000,
    );
    t.match(await net.group('runfleet-burst'), { MinSize: 0, MaxSize: 3, DesiredCapacity: 0 });

    const demand = await fetch(`http://${watch.listen}/v1/fleets/burst/demand`, {
      method: 'POST',
      body: JSON.stringify({ jobs: 2, duration_ms: 500 }),
    });
    t.equal(demand.status, 202);
    const launched = await until(
      'two instances',
      async () => {
        const g = await net.group('runfleet-burst');
        return g?.DesiredCapacity === 2 && g.Instances?.length === 2 ? memberIds(g) : undefined;
      },
      15_000,
    );
    const status = async () =>
      (await (await fetch(`http://${watch.listen}/v1/status`)).json()) as StatusReport;
    const used = await until(
      'both jobs ran',
      async () => {
        const instances = (await status()).fleets[0]?.instances ?? [];
        return instances.length === 2 && instances.every((i) => i.use_count === 1) ? instances : undefined;
      },
      15_000,
    );
    t.same(used.map((i) => i.id).sort(), [...launched].sort(), "the jobs ran on moto's instances");
    await until(
      'scaled back to zero',
      async () => {
        const g = await net.group('runfleet-burst');
        return g?.DesiredCapacity === 0 && g.Instances?.length === 0 ? true : undefined;
      },
      30_000,
    );
    t.same(await ec2States(net, launched), ['terminated', 'terminated']);

    watch.stop();
    t.equal(await watch.exited, 0, `SIGTERM exits cleanly\n${watch.output().slice(-2000)}`);
    t.notMatch(watch.output(), /PRIVATE KEY|e2e-secret-not-real/, 'no secret in the daemon output');
  });
}
