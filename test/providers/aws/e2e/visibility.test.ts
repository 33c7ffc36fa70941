/**
 * What an operator must see in `runfleet status`, the metrics and the log while `watch` runs an
 * AWS fleet (real SDK against the fake endpoint): an orphan group (tagged as runfleet's, no fleet
 * file), and the fleet's last provider error, with its time and code, while AWS fails its calls.
 */
import t from 'tap';
import type { StatusReport } from '../../../../src/daemon/status.js';
import { until } from '../../../cli/helpers.js';
import { awsFleetYaml, awsWorkspace, startWatch } from './fixtures/workspace.js';

t.test('status, metrics and log show orphans and provider errors', async (t) => {
  const ws = await awsWorkspace(t, { pendingMs: 0 });
  const { fake } = ws;
  fake.seedGroup({
    name: 'runfleet-retired',
    maxSize: 2,
    tags: { 'runfleet:fleet': 'retired', 'runfleet:lifecycle': 'owned' },
  });
  await ws.writeFleet('seen', awsFleetYaml('seen', { endpoint: fake.url, maxInstances: 2, idleCount: 0 }));
  const watch = await startWatch(t, ws, ['--interval', '1s']);
  const { listen } = watch;
  const status = async () => (await (await fetch(`http://${listen}/v1/status`)).json()) as StatusReport;
  const metrics = async () => (await fetch(`http://${listen}/metrics`)).text();

  const orphans = await until('the orphan group in status', async () => {
    const s = await status();
    return s.orphans?.length ? s.orphans : undefined;
  });
  t.match(orphans, [/runfleet-retired is tagged as runfleet's for fleet "retired"/]);
  t.match(await metrics(), /runfleet_orphans\{fleet="",kind="group"\} 1/);
  t.equal(watch.output().split('"event":"orphan"').length - 1, 1, 'logged once, not on every pass');

  fake.failWithServerError(1000, { action: 'DescribeAutoScalingGroups' });
  const failed = await until(
    'the provider error in status',
    async () => (await status()).fleets[0]?.provider_error,
  );
  t.match(failed, { code: /PROVIDER/, during: 'pass', at: /^\d{4}-/, message: /internal error/i });
  t.match(await metrics(), /runfleet_provider_errors_total\{fleet="seen",code="PROVIDER[A-Z_]*"\} [1-9]/);
  t.match(await metrics(), /runfleet_provider_last_error_timestamp_seconds\{fleet="seen"\} \d/);
  const cli = await ws.cli(['status']);
  t.match(cli.stdout, /last provider error at .*\(pass, PROVIDER/);
  t.match(cli.stdout, /orphan: Auto Scaling group runfleet-retired|orphan: aws group runfleet-retired/);

  fake.clearFaults();
  watch.stop();
  t.equal(await watch.exited, 0, watch.output().slice(-2000));
});
