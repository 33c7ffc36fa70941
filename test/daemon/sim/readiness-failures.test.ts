/**
 * Readiness failures are counted once per instance: six new instances failing their ready command
 * together are six `not_ready` events and one step of the fleet's backoff (they are one batch, made
 * before the pause began), not a doubling per failure straight to the 10-minute cap.
 */
import t from 'tap';
import { simulate } from './harness.js';

const FLEET =
  'name: six\nprovider: { type: local }\nmax_instances: 6\ninstance_ready_command: "exit 1"\n' +
  'policy:\n  - idle_count: 6\n    idle_time: 5m\n';

t.test('six instances failing at once: six not_ready events, one backoff step', async (t) => {
  let probes = 0;
  const h = await simulate({
    fleets: { 'f/six.yaml': FLEET },
    sim: { bootDelayMs: 2_000 },
    probe: async () => {
      // Each answers a little later than the one before, as real commands do, so the passes that
      // earlier failures trigger are observing while later probes fail.
      const turns = 3 * ++probes;
      for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
      return { ok: false, output: 'exit status 1' };
    },
  });
  const observe = h.sim.observe.bind(h.sim);
  h.sim.observe = async (refs) => {
    const groups = await observe(refs);
    for (let i = 0; i < 4; i++) await new Promise((r) => setImmediate(r));
    return groups;
  };
  await h.daemon.start();
  t.equal(h.sim.created, 6, 'six instances requested at once');
  for (let i = 0; i < 10; i++) await h.advance(500); // boot, probes, the passes they trigger
  const notReady = h.log.lines.filter((l) => l.event === 'not_ready');
  t.equal(notReady.length, 6, `one not_ready per instance (${notReady.map((l) => l.instance).join(', ')})`);
  t.equal(new Set(notReady.map((l) => l.instance)).size, 6, 'each instance once');
  t.equal(probes, 6, 'each instance probed once');
  const pauses = notReady.map((l) => l.backoff_ms as number);
  t.equal(pauses[0], 10_000, 'the first failure pauses creation for the first step, 10 s');
  t.ok(
    pauses.every((p) => p <= 10_000),
    `the others, of the same batch, do not lengthen it (${pauses.join(', ')})`,
  );
  const status = await h.daemon.status();
  t.equal(
    Date.parse(status.fleets[0]?.backoff_until ?? '') - h.clock.now().getTime() <= 10_000,
    true,
    'the pause is at most the first step',
  );
  await h.daemon.stop();
});
