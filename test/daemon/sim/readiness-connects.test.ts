/**
 * What readiness proves, as the README says: the provider's heartbeat always; a connection and a
 * command only with `instance_ready_command` (`"true"` asks for the connection alone). An
 * instance whose command cannot run never gets a job.
 */
import t from 'tap';
import { simulate } from './harness.js';

const fleet = (ready: string) =>
  `name: plain\nprovider: { type: local }\nmax_instances: 2\n${ready}policy:\n  - idle_count: 2\n`;

for (const bootDelayMs of [0, 5_000]) {
  t.test(`instance_ready_command "true", boot ${bootDelayMs} ms: a connection is made first`, async (t) => {
    const probed: string[] = [];
    const h = await simulate({
      fleets: { 'f/plain.yaml': fleet('instance_ready_command: "true"\n') },
      sim: { bootDelayMs },
      probe: async (_fleet, id) => {
        probed.push(id);
        return { ok: false, output: 'connection refused' };
      },
    });
    await h.daemon.start();
    await h.advance(bootDelayMs + 3_000);
    t.strictSame(probed.sort(), ['sim-001', 'sim-002'], 'every new instance was probed');
    t.equal(h.daemon.slots.counts('plain').idle, 0, 'no slot offered on an instance that takes no command');
    t.ok(
      h.log.lines.some((l) => l.event === 'not_ready' && /connection refused/.test(String(l.error))),
      'the failure says why',
    );
    await h.daemon.stop();
  });
}

t.test('no instance_ready_command: the heartbeat alone, and status shows them ready', async (t) => {
  const probed: string[] = [];
  const h = await simulate({
    fleets: { 'f/plain.yaml': fleet('') },
    sim: { bootDelayMs: 5_000 },
    probe: async (_fleet, id) => {
      probed.push(id);
      return { ok: true };
    },
  });
  await h.daemon.start();
  await h.advance(8_000);
  t.strictSame(probed, [], 'no connection is made');
  t.equal(h.daemon.slots.counts('plain').idle, 2, 'both offered once their heartbeat passed');
  await h.daemon.stop();
});
