/**
 * `runfleet watch` on an AWS fleet against the fake endpoint: the daemon creates the group, scales
 * it up for synthetic demand (POST /v1/fleets/NAME/demand), takes jobs only on instances that are
 * InService, scales back to zero once they are idle, and `runfleet status` shows the instances.
 */
import t from 'tap';
import type { StatusReport } from '../../../../src/daemon/status.js';
import { until } from '../../../cli/helpers.js';
import { assertCleanTraffic, awsFleetYaml, awsWorkspace, startWatch } from './fixtures/workspace.js';

const BOOT_MS = 1500;

t.test('the daemon scales an AWS fleet up for demand and back to zero', async (t) => {
  const ws = await awsWorkspace(t, { pendingMs: BOOT_MS });
  const { fake } = ws;
  await ws.writeFleet(
    'burst',
    // idle_time leaves the status CLI (a fresh process) time to see the used instances.
    awsFleetYaml('burst', { endpoint: fake.url, maxInstances: 3, idleCount: 0, idleTime: '5s' }),
  );
  const watch = await startWatch(t, ws, ['--interval', '1s', '--grace', '2s']);
  const { listen } = watch;
  const status = async () => (await (await fetch(`http://${listen}/v1/status`)).json()) as StatusReport;
  await until(
    'the daemon created the group',
    async () => (fake.group('runfleet-burst') ? true : undefined),
    15_000,
  );
  t.match(fake.group('runfleet-burst'), {
    minSize: 0,
    maxSize: 3,
    desired: 0,
    suspendedProcesses: ['AZRebalance'],
  });

  // Scale-down terminations wait until `runfleet status` has been looked at below, so the
  // instances are still there for it however long the CLI takes to start.
  const termination = fake.hold({ action: 'TerminateInstanceInAutoScalingGroup' });
  const demand = await fetch(`http://${listen}/v1/fleets/burst/demand`, {
    method: 'POST',
    body: JSON.stringify({ jobs: 2, duration_ms: 800 }),
  });
  t.equal(demand.status, 202);
  await until('desired capacity 2', async () =>
    fake.group('runfleet-burst')?.desired === 2 ? true : undefined,
  );

  const used = await until(
    'both jobs ran',
    async () => {
      const s = await status();
      const instances = s.fleets[0]?.instances ?? [];
      return instances.length === 2 && instances.every((i) => i.use_count === 1) ? instances : undefined;
    },
    15_000,
  );
  // An instance is ready for jobs only once AWS has it InService (EC2 running), never while Pending.
  for (const i of used) {
    const launched = fake.world.instances.get(i.id)?.launchTime.getTime() ?? Infinity;
    t.ok(
      Date.parse(i.ready_at ?? '') >= launched + BOOT_MS,
      `${i.id} became ready ${Date.parse(i.ready_at ?? '') - launched} ms after launch, not before it booted (${BOOT_MS} ms)`,
    );
  }

  const cli = await ws.cli(['status']);
  t.equal(cli.code, 0, cli.stderr);
  t.match(cli.stdout, /daemon running/);
  for (const i of used) t.match(cli.stdout, new RegExp(`${i.id}\\s+(ready|draining|deleting)`));
  termination.release();

  await until(
    'scaled back to zero',
    async () => {
      const g = fake.group('runfleet-burst');
      return g?.desired === 0 && g.instances.length === 0 ? true : undefined;
    },
    15_000,
  );
  for (const i of used) t.equal(fake.world.instances.get(i.id)?.ec2State, 'terminated');
  t.equal(fake.count('TerminateInstanceInAutoScalingGroup'), 2, 'each idle instance terminated once');
  await until('status shows no instance', async () =>
    (await status()).fleets[0]?.instances.length === 0 ? true : undefined,
  );

  watch.stop();
  t.equal(await watch.exited, 0, `SIGTERM exits cleanly\n${watch.output().slice(-2000)}`);
  t.notMatch(watch.output(), /PRIVATE KEY|e2e-secret-not-real/, 'no secret in the daemon output');
  assertCleanTraffic(t, fake);
});
