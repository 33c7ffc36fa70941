/**
 * A TerminateInstanceInAutoScalingGroup whose answer is lost (AWS carried it out, the caller got a
 * 500): the daemon must not stall or adopt the dying instance as new; demand arriving meanwhile
 * gets fresh instances, and the `unavailable` slot gauge does not keep what left.
 */
import t from 'tap';
import type { StatusReport } from '../../../../src/daemon/status.js';
import { until } from '../../../cli/helpers.js';
import { awsFleetYaml, awsWorkspace, startWatch } from './fixtures/workspace.js';

t.test('a lost terminate answer: no adoption of the dying instance, no stall', async (t) => {
  const ws = await awsWorkspace(t, { pendingMs: 300, terminateMs: 1500 });
  const { fake } = ws;
  await ws.writeFleet(
    'lost',
    awsFleetYaml('lost', { endpoint: fake.url, maxInstances: 4, idleCount: 2, idleTime: '1s' }),
  );
  const watch = await startWatch(t, ws, ['--interval', '1s']);
  const status = async () => (await (await fetch(`http://${watch.listen}/v1/status`)).json()) as StatusReport;
  await until(
    'two ready',
    async () => {
      const f = (await status()).fleets[0];
      return f?.instances.filter((i) => i.state === 'ready').length === 2 ? f : undefined;
    },
    20_000,
  );

  fake.failWithServerError(2, { action: 'TerminateInstanceInAutoScalingGroup' }, { afterEffect: true });
  await ws.writeFleet(
    'lost',
    awsFleetYaml('lost', { endpoint: fake.url, maxInstances: 4, idleCount: 0, idleTime: '1s' }),
  );
  await until(
    'scaled in at AWS',
    async () => (fake.group('runfleet-lost')?.instances.length === 0 ? true : undefined),
    20_000,
  );
  await new Promise((r) => setTimeout(r, 2500)); // a few more passes after they left
  const log = watch.output();
  t.notMatch(log, /"event":"adopt"/, 'the dying instances are never adopted as new ones');
  t.notMatch(log, /"event":"not_ready"/, 'nor probed as new ones');
  const f = (await status()).fleets[0];
  t.strictSame(f?.instances, [], 'the ledger is empty');
  t.equal(f?.slots?.unavailable, 0, 'no slot of a removed instance is counted unavailable');
  watch.stop();
  t.equal(await watch.exited, 0);
});
