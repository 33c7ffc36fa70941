/**
 * import-plan-aws.test.ts against moto (test/helpers/moto.ts) instead of the fake: `runfleet
 * import` of a GitLab Runner config.toml whose AWS plugin names an existing Auto Scaling group,
 * then `runfleet plan` (real binary, real SDK clients, AWS_ENDPOINT_URL pointing at moto), with
 * the group set up as GitLab's docs ask and one instance the old manager started. The plan adopts
 * the group and changes only runfleet's ownership tags; nothing is written to moto.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { SuspendProcessesCommand } from '@aws-sdk/client-auto-scaling';
import { createOperatorGroup, memberIds, motoNetwork, motoOrSkip, startMoto } from '../helpers/moto.js';
import { cliWorkspace } from '../providers/aws/e2e/fixtures/workspace.js';
import { assertAdoptionPlan, IMPORT_AWS_CONFIG } from './fixtures/import-aws-config.js';

const server = motoOrSkip(t);
if (server) {
  const moto = await startMoto(t, server);

  t.test('import, then plan against the adopted group in moto: only the ownership tags change', async (t) => {
    const net = await motoNetwork(moto);
    // As GitLab's AWS plugin docs ask: max = max_instances, scale-in protection, AZRebalance suspended.
    await createOperatorGroup(net, {
      name: 'ci-docker-asg',
      maxSize: 4,
      desired: 1,
      newInstancesProtectedFromScaleIn: true,
      tags: { team: 'ci' },
    });
    await net.autoscaling.send(
      new SuspendProcessesCommand({
        AutoScalingGroupName: 'ci-docker-asg',
        ScalingProcesses: ['AZRebalance'],
      }),
    );
    const before = await net.group('ci-docker-asg');
    const oldInstance = memberIds(before)[0]!;

    const ws = await cliWorkspace(t);
    await writeFile(join(ws.dir, 'config.toml'), IMPORT_AWS_CONFIG);
    const imported = await ws.cli(['import', 'config.toml']);
    t.equal(imported.code, 0, imported.stderr);
    t.match(imported.stdout, /Wrote fleets\/ci-docker\.yaml/);

    const plan = await ws.cli(['plan', '--detailed-exitcode'], { AWS_ENDPOINT_URL: moto.url });
    t.equal(plan.code, 2, `changes: the ownership tags\n${plan.stdout}\n${plan.stderr}`);
    assertAdoptionPlan(t, plan.stdout);

    const after = await net.group('ci-docker-asg');
    t.same(after, before, 'plan wrote nothing to the group');
    t.same(memberIds(after), [oldInstance], "the old manager's instance is kept");
    t.notMatch(
      imported.stdout + imported.stderr + plan.stdout + plan.stderr,
      /glrt-E2E/,
      'the token is never printed',
    );
  });
}
