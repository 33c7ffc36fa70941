/**
 * A TerminateInstanceInAutoScalingGroup that fails, before taking effect (the removal is retried
 * on the next pass) or after (AWS carried it out, the caller got a 500): the daemon must not adopt
 * the dying instance as a new one (a demand pass reusing an observation made before the retry did,
 * then probed it and paused creation), demand arriving afterwards gets a fresh instance at once,
 * and the `unavailable` slot gauge does not keep the instances that left.
 */
import t from 'tap';
import type { StatusReport } from '../../../../src/daemon/status.js';
import { until } from '../../../cli/helpers.js';
import { awsFleetYaml, awsWorkspace, startWatch } from './fixtures/workspace.js';

const cases = [
  { name: 'failed before taking effect, then retried', afterEffect: false, terminateMs: 1500 },
  { name: 'answer lost after taking effect', afterEffect: true, terminateMs: 0 },
];

for (const c of cases) {
  t.test(`a terminate ${c.name}: no adoption of the dying instance, no stall`, async (t) => {
    const ws = await awsWorkspace(t, { pendingMs: 300, terminateMs: c.terminateMs });
    const { fake } = ws;
    const fleet = (idleCount: number) =>
      awsFleetYaml('lost', { endpoint: fake.url, maxInstances: 4, idleCount, idleTime: '1s' });
    await ws.writeFleet('lost', fleet(2));
    const watch = await startWatch(t, ws, ['--interval', '1s']);
    const status = async () =>
      (await (await fetch(`http://${watch.listen}/v1/status`)).json()) as StatusReport;
    const ready = (n: number) => async () => {
      const f = (await status()).fleets[0];
      return f?.instances.filter((i) => i.state === 'ready').length === n ? f : undefined;
    };
    await until('two ready', ready(2), 20_000);

    fake.failWithServerError(
      1,
      { action: 'TerminateInstanceInAutoScalingGroup' },
      { afterEffect: c.afterEffect },
    );
    await ws.writeFleet('lost', fleet(0));
    await until(
      'scaled in at AWS',
      async () => (fake.group('runfleet-lost')?.instances.length === 0 ? true : undefined),
      20_000,
    );
    await until(
      'the ledger is empty',
      async () => ((await status()).fleets[0]?.instances.length === 0 ? true : undefined),
      10_000,
    );
    await new Promise((r) => setTimeout(r, 2500)); // a few more passes after they left
    const log = watch.output();
    t.match(log, /"msg":"remove failed"/, 'the injected failure reached the daemon');
    t.notMatch(log, /"event":"adopt"/, 'the dying instances are never adopted as new ones');
    t.notMatch(log, /"event":"not_ready"/, 'nor probed as new ones');
    const f = (await status()).fleets[0];
    t.strictSame(f?.instances, [], 'the ledger is empty');
    t.equal(f?.slots?.unavailable, 0, 'no slot of a removed instance is counted unavailable');
    t.equal(f?.backoff_until, undefined, 'creation is not paused');

    await ws.writeFleet('lost', fleet(1));
    const back = await until('a new instance ready', ready(1), 20_000);
    t.equal(back.slots?.unavailable, 0, 'the gauge counts the instance that is left only');
    watch.stop();
    t.equal(await watch.exited, 0);
  });
}
