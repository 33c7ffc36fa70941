/**
 * Without `instance_ready_command`, readiness still proves a connection (the probe runs `true`
 * through the connector) before an instance takes jobs, as the README says: an instance that
 * answers its provider's heartbeat but takes no command never gets a job.
 */
import t from 'tap';
import { simulate } from './harness.js';

const FLEET = 'name: plain\nprovider: { type: local }\nmax_instances: 2\npolicy:\n  - idle_count: 2\n';

for (const bootDelayMs of [0, 5_000]) {
  t.test(`no ready command, boot ${bootDelayMs} ms: a connection is made first`, async (t) => {
    const probed: string[] = [];
    let connects = true;
    const h = await simulate({
      fleets: { 'f/plain.yaml': FLEET },
      sim: { bootDelayMs },
      probe: async (_fleet, id) => {
        probed.push(id);
        return connects ? { ok: true } : { ok: false, output: 'connection refused' };
      },
    });
    connects = false;
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
