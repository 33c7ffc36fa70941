import t from 'tap';
import type { Acquisition } from '../../../src/runtime/slots/types.js';
import { minutes, simulate } from './harness.js';

const fleet = (name: string, extra: string, policy = '  - idle_count: 0\n    idle_time: 5m\n') =>
  `name: ${name}\nprovider: { type: local }\n${extra}policy:\n${policy}`;

t.test('a burst scales up at once, jobs run, idle decay scales to zero (idle_count 0, cap 2)', async (t) => {
  const h = await simulate({
    fleets: { 'f/a.yaml': fleet('burst', 'capacity_per_instance: 2\nmax_instances: 10\n') },
    sim: { bootDelayMs: 30_000 },
  });
  await h.daemon.start();
  t.equal(h.live('burst'), 0, 'idle_count 0 and no demand: no instance');
  const jobs = Array.from({ length: 6 }, () => h.daemon.slots.acquire('burst'));
  await h.settle();
  t.equal(h.live('burst'), 3, '6 pending jobs / 2 slots = 3 instances requested at once, before any tick');
  t.same(h.daemon.slots.demand('burst'), { acquired: 0, reserved: 0, pending: 6 });
  await h.advance(35_000);
  const held: Acquisition[] = await Promise.all(jobs);
  t.equal(h.daemon.slots.demand('burst').acquired, 6, 'all jobs got a slot once instances were ready');
  t.equal(h.sim.created, 3, 'no instance created twice while booting');
  await h.advance(minutes(10));
  t.equal(h.live('burst'), 3, 'busy instances stay');
  for (const a of held) await h.daemon.slots.release(a);
  await h.settle();
  await h.advance(minutes(4));
  t.equal(h.live('burst'), 3, 'kept until idle_time passes');
  await h.advance(minutes(3));
  t.equal(h.live('burst'), 0, 'scaled to zero after idle_time whatever capacity_per_instance is');
  const rows = await h.store.listInstances('burst');
  t.equal(rows.length, 0, 'ledger is empty too');
  t.same(h.sim.violations, []);
  await h.daemon.stop();
});

t.test('max_use_count 1: one fresh instance per job, no create/delete loop afterwards', async (t) => {
  const h = await simulate({
    fleets: { 'f/a.yaml': fleet('once', 'capacity_per_instance: 1\nmax_use_count: 1\nmax_instances: 5\n') },
    sim: { bootDelayMs: 10_000 },
  });
  await h.daemon.start();
  for (let i = 0; i < 4; i++) {
    const job = h.daemon.slots.acquire('once');
    await h.advance(12_000);
    const a = await job;
    await h.advance(minutes(1));
    await h.daemon.slots.release(a);
    await h.settle();
    t.equal(h.live('once'), 0, `job ${i + 1}: its used-up instance is removed at once`);
  }
  await h.advance(minutes(60));
  t.equal(h.sim.created, 4, 'exactly one instance per job, none while idle for an hour');
  t.equal(h.live('once'), 0);
  t.same(h.sim.violations, []);
  await h.daemon.stop();
});

t.test('a failing instance_ready_command backs off instead of looping', async (t) => {
  let probes = 0;
  const h = await simulate({
    fleets: {
      'f/a.yaml': fleet(
        'broken',
        'capacity_per_instance: 1\nmax_instances: 10\ninstance_ready_command: "exit 1"\n',
        '  - idle_count: 2\n    idle_time: 5m\n',
      ),
    },
    sim: { bootDelayMs: 5_000 },
    probe: async () => {
      probes++;
      return { ok: false, output: 'exit status 1' };
    },
  });
  await h.daemon.start();
  await h.advance(minutes(30));
  t.ok(probes >= 2, `probes ran (${probes})`);
  t.ok(h.sim.created <= 9, `bounded creations in 30 minutes: ${h.sim.created} (a loop would make hundreds)`);
  const status = await h.daemon.status();
  const f = status.fleets.find((x) => x.name === 'broken');
  t.ok(f?.backoff_until, 'status shows the backoff');
  t.equal(h.daemon.slots.counts('broken').idle, 0, 'no broken instance ever took jobs');
  t.ok(
    h.log.lines.some((l) => l.msg.includes('readiness check') && l.backoff_ms !== undefined),
    'failure logged with the backoff',
  );
  await h.daemon.stop();
});

t.test(
  'spot interruption drains; a busy instance is never removed; reclaimed capacity is replaced',
  async (t) => {
    const h = await simulate({
      fleets: {
        'f/a.yaml': fleet(
          'spot',
          'capacity_per_instance: 1\nmax_instances: 5\n',
          '  - idle_count: 2\n    idle_time: 5m\n',
        ),
      },
      sim: { bootDelayMs: 1_000 },
    });
    await h.daemon.start();
    await h.advance(5_000);
    t.equal(h.live('spot'), 2, 'idle_count 2 slots of 1 = 2 instances');
    const job = await h.daemon.slots.acquire('spot');
    await h.advance(5_000);
    t.equal(h.live('spot'), 3, 'one busy + idle_count 2');
    h.sim.interrupt('spot', job.instanceId);
    await h.advance(61_000); // seen at the next observe
    t.equal(h.daemon.slots.instances('spot').find((i) => i.id === job.instanceId)?.reason, 'spot');
    t.ok(h.sim.groups.get('spot')?.has(job.instanceId), 'the busy instance stays until its job ends');
    await h.daemon.slots.release(job);
    await h.advance(3_000);
    t.notOk(h.sim.groups.get('spot')?.has(job.instanceId), 'removed once idle');
    const victim = h.sim.live('spot')[0]?.id as string;
    h.sim.reclaim('spot', victim);
    await h.advance(minutes(1) + 5_000);
    t.equal(h.live('spot'), 2, 'reclaimed instance replaced to keep idle_count');
    t.same(h.sim.violations, [], 'no busy instance removed');
    await h.daemon.stop();
  },
);

t.test(
  'restart in the middle of a scale-up: instances adopted, none created twice, none leaked',
  async (t) => {
    const h = await simulate({
      fleets: {
        'f/a.yaml': fleet(
          'restart',
          'capacity_per_instance: 1\nmax_instances: 10\n',
          '  - idle_count: 3\n    idle_time: 5m\n',
        ),
      },
      sim: { bootDelayMs: 1_000 },
    });
    h.sim.hangNextIncrease = true;
    void h.daemon.start(); // hangs inside the first increase, like a process killed mid-call
    await h.settle();
    t.equal(h.sim.created, 3, 'the provider created the instances');
    t.equal((await h.store.listOpenIntents()).length, 1, 'the increase intent is open');
    const d2 = h.crashAndRestart();
    await d2.start();
    await h.advance(5_000);
    t.equal(h.sim.created, 3, 'nothing created twice');
    t.equal(h.live('restart'), 3);
    const rows = await h.store.listInstances('restart');
    t.equal(rows.length, 3, 'every instance is in the ledger (no leak)');
    t.ok(
      rows.every((r) => r.state === 'ready'),
      'adopted instances were probed and are ready',
    );
    t.equal((await h.store.listOpenIntents()).length, 0, 'the open intent was resolved');
    t.ok(h.log.lines.some((l) => l.msg.includes('taking over the lock')));
    await d2.stop();
  },
);

t.test('period switch at a boundary, across a DST change (Europe/Berlin)', async (t) => {
  const policy =
    '  - periods: ["* 8-17 * * *"]\n    timezone: Europe/Berlin\n    idle_count: 2\n    idle_time: 5m\n';
  const h = await simulate({
    fleets: { 'f/a.yaml': fleet('office', 'capacity_per_instance: 2\nmax_instances: 4\n', policy) },
    start: '2026-03-28T06:50:00Z', // 07:50 CET, Saturday before the switch to CEST
    sim: { bootDelayMs: 1_000 },
  });
  await h.daemon.start();
  t.equal(h.live('office'), 0, 'before 08:00 local: no policy, no idle capacity');
  await h.jumpTo('2026-03-28T06:59:00Z');
  t.equal(h.live('office'), 0);
  await h.jumpTo('2026-03-28T07:01:30Z');
  t.equal(h.live('office'), 1, '08:00 CET = 07:00 UTC: idle_count 2 / 2 per instance');
  await h.jumpTo('2026-03-28T17:10:00Z'); // 18:10 CET
  t.equal(h.live('office'), 0, 'after 17:59 local and idle_time: back to zero');
  await h.jumpTo('2026-03-29T05:59:00Z'); // 07:59 CEST
  t.equal(h.live('office'), 0, 'the day after the DST change, 05:59 UTC is still before 08:00 local');
  await h.jumpTo('2026-03-29T06:01:30Z'); // 08:01 CEST
  t.equal(h.live('office'), 1, '08:00 CEST = 06:00 UTC: the boundary moved with DST');
  await h.daemon.stop();
});

t.test(
  'an invalid edit keeps the fleet on its last good definition; a deleted file destroys after jobs end',
  async (t) => {
    const h = await simulate({
      fleets: {
        'f/a.yaml': fleet(
          'keep',
          'capacity_per_instance: 1\nmax_instances: 5\n',
          '  - idle_count: 2\n    idle_time: 5m\n',
        ),
      },
      sim: { bootDelayMs: 1_000 },
    });
    await h.daemon.start();
    await h.advance(5_000);
    t.equal(h.live('keep'), 2);
    h.files['f/a.yaml'] = fleet('keep', 'capacity_per_instance: 1\nmax_instances: many\n');
    await h.daemon.reloadConfig();
    await h.advance(minutes(10));
    t.equal(h.live('keep'), 2, 'instances untouched');
    const st = (await h.daemon.status()).fleets.find((f) => f.name === 'keep');
    t.equal(st?.status, 'held');
    t.match(
      st?.config_errors.join('\n') ?? '',
      /f\/a\.yaml:\d+:\d+: .*max_instances/,
      'file:line:field reported',
    );
    const job = await h.daemon.slots.acquire('keep');
    delete h.files['f/a.yaml'];
    await h.daemon.reloadConfig();
    await h.advance(5_000);
    t.equal(h.live('keep'), 1, 'idle instance removed, the busy one stays');
    t.ok(h.sim.groups.has('keep'), 'group kept while a job runs');
    await h.daemon.slots.release(job);
    await h.advance(5_000);
    t.notOk(h.sim.groups.has('keep'), 'group deleted after the job ended');
    t.same(await h.store.listFleets(), []);
    t.same(h.sim.violations, []);
    await h.daemon.stop();
  },
);

t.test(
  'a fleet file read between an editor’s truncate and its write keeps its fleets (an empty file is no removal)',
  async (t) => {
    const text = fleet(
      'keep',
      'capacity_per_instance: 1\nmax_instances: 5\n',
      '  - idle_count: 2\n    idle_time: 5m\n',
    );
    const h = await simulate({ fleets: { 'f/a.yaml': text }, sim: { bootDelayMs: 1_000 } });
    await h.daemon.start();
    await h.advance(5_000);
    t.equal(h.live('keep'), 2);
    // The reload lands on the truncated file, then on a broken text: the last good definition runs.
    h.files['f/a.yaml'] = '';
    await h.daemon.reloadConfig();
    await h.advance(minutes(1));
    t.equal(h.live('keep'), 2, 'instances untouched while the file reads empty');
    let st = (await h.daemon.status()).fleets.find((f) => f.name === 'keep');
    t.equal(st?.status, 'held', 'held, not removing');
    t.match(
      st?.config_errors.join('\n') ?? '',
      /f\/a\.yaml:1:1: fleet file is empty/,
      'the reason, with file and line',
    );
    h.files['f/a.yaml'] = fleet('keep', 'capacity_per_instance: 1\nmax_instances: many\n');
    await h.daemon.reloadConfig();
    await h.advance(minutes(1));
    t.equal(h.live('keep'), 2, 'still untouched on the broken text that follows');
    t.equal((await h.daemon.status()).fleets.find((f) => f.name === 'keep')?.status, 'held');
    h.files['f/a.yaml'] = text.replace('idle_count: 2', 'idle_count: 3');
    await h.daemon.reloadConfig();
    await h.advance(5_000);
    t.equal(h.live('keep'), 3, 'the finished write applies');
    st = (await h.daemon.status()).fleets.find((f) => f.name === 'keep');
    t.equal(st?.status, 'active');
    // A file that deliberately says nothing (a comment) removes its fleets, as a deleted file does.
    h.files['f/a.yaml'] = '# retired\n';
    await h.daemon.reloadConfig();
    await h.advance(minutes(1));
    t.equal(h.live('keep'), 0, 'a file left with only a comment removes its fleets');
    t.same(h.sim.violations, []);
    await h.daemon.stop();
  },
);

t.test(
  'heartbeats: an idle instance that stops answering is replaced after 3 failures; busy ones are left alone',
  async (t) => {
    const h = await simulate({
      fleets: {
        'f/a.yaml': fleet(
          'hb',
          'capacity_per_instance: 1\nmax_instances: 5\n',
          '  - idle_count: 2\n    idle_time: 30m\n',
        ),
      },
      sim: { bootDelayMs: 1_000 },
    });
    await h.daemon.start();
    await h.advance(5_000);
    const job = await h.daemon.slots.acquire('hb');
    await h.advance(5_000);
    t.equal(h.live('hb'), 3, 'one busy + idle_count 2');
    const busy = job.instanceId;
    const [dead, flaky] = h.sim
      .live('hb')
      .map((i) => i.id)
      .filter((id) => id !== busy) as [string, string];
    const since = h.clock.now().getTime();
    const callsSince = (id: string) => (h.sim.heartbeats.get(id) ?? []).filter((at) => at >= since);
    h.sim.failHeartbeats(busy); // would fail, were it ever asked
    h.sim.failHeartbeats(dead);
    h.sim.failHeartbeats(flaky, 1);

    const failuresOf = async (id: string) => (await h.store.getInstance('hb', id))?.health_failures;
    await h.advance(minutes(1) + 5_000);
    t.equal(callsSince(dead).length, 1, 'first heartbeat of the idle instance');
    t.equal(await failuresOf(dead), 1, 'one failure in the ledger');
    t.equal(await failuresOf(flaky), 1, 'the flaky one failed once too');
    await h.advance(minutes(1));
    t.equal(await failuresOf(dead), 2);
    t.equal(await failuresOf(flaky), 0, 'one success resets the count');
    t.ok(h.sim.groups.get('hb')?.has(dead), 'two failures are not enough');
    t.equal(h.daemon.slots.instances('hb').find((i) => i.id === dead)?.available, true);
    await h.advance(minutes(1));
    t.notOk(h.sim.groups.get('hb')?.has(dead), 'removed after the third consecutive failure');
    t.equal(callsSince(dead).length, 3, 'exactly three heartbeats, one per interval');
    await h.advance(10_000);
    t.equal(h.live('hb'), 3, 'replaced to keep idle_count');
    const rows = await h.store.listInstances('hb');
    const fresh = rows.find((r) => r.id !== busy && r.id !== flaky);
    t.equal(fresh?.state, 'ready', 'the replacement became ready');
    t.equal(fresh?.health_failures, 0);
    t.ok(h.sim.groups.get('hb')?.has(flaky), 'a single failure followed by success keeps the instance');
    t.ok(h.sim.groups.get('hb')?.has(busy), 'the busy instance stays');
    t.same(callsSince(busy), [], 'an instance with a running job is never heartbeated');
    t.equal(await failuresOf(busy), 0);
    const metrics = await h.daemon.metricsText();
    t.match(metrics, /runfleet_instance_heartbeat_failures_total\{fleet="hb"\} 4/, '3 + 1 failed heartbeats');
    t.match(metrics, /runfleet_instance_heartbeat_unhealthy_total\{fleet="hb"\} 1/);
    t.match(metrics, /runfleet_instance_removals_total\{fleet="hb",reason="unhealthy"\} 1/);
    t.ok(
      h.log.lines.some((l) => l.event === 'unhealthy' && l.instance === dead && l.failures === 3),
      'the replacement is logged with its failure count',
    );

    await h.advance(minutes(10));
    t.same(callsSince(busy), [], 'still never, ten minutes on');
    t.ok(h.sim.groups.get('hb')?.has(busy));
    await h.daemon.slots.release(job);
    await h.advance(minutes(4) + 5_000);
    t.ok(callsSince(busy).length >= 3, 'once its job ended, it is heartbeated like the others');
    t.notOk(h.sim.groups.get('hb')?.has(busy), 'and, not answering, replaced');
    t.same(h.sim.violations, [], 'no busy instance removed');
    await h.daemon.stop();
  },
);

t.test('heartbeats: at most once per interval per instance, a few at a time', async (t) => {
  const h = await simulate({
    fleets: {
      'f/a.yaml': fleet(
        'many',
        'capacity_per_instance: 1\nmax_instances: 12\n',
        '  - idle_count: 12\n    idle_time: 30m\n',
      ),
    },
    sim: { bootDelayMs: 1_000 },
    daemon: { heartbeatIntervalMs: minutes(2) },
  });
  await h.daemon.start();
  await h.advance(5_000);
  t.equal(h.live('many'), 12);
  h.sim.maxHeartbeatsInFlight = 0; // readiness checks run side by side; count the health checks only
  await h.advance(minutes(20));
  const ids = h.sim.live('many').map((i) => i.id);
  for (const id of ids) {
    const calls = h.sim.heartbeats.get(id) ?? [];
    const gaps = calls.slice(1).map((at, i) => at - (calls[i] as number));
    // The first call is readiness's; then one per interval (passes tick every minute).
    t.ok(calls.length >= 8 && calls.length <= 11, `${id}: ${calls.length} heartbeats in 20 minutes`);
    t.ok(
      gaps.slice(1).every((g) => g >= minutes(2)),
      `${id}: never twice within the interval (${gaps.join(', ')})`,
    );
  }
  t.ok(h.sim.maxHeartbeatsInFlight > 1, 'heartbeats overlap');
  t.ok(h.sim.maxHeartbeatsInFlight <= 4, `at most 4 at a time (${h.sim.maxHeartbeatsInFlight})`);
  await h.daemon.stop();
});

t.test('heartbeats: provider errors are not counted, silence is; rare passes still get checks', async (t) => {
  const h = await simulate({
    fleets: {
      'f/a.yaml': fleet(
        'quiet',
        'capacity_per_instance: 1\nmax_instances: 5\n',
        '  - idle_count: 2\n    idle_time: 30m\n',
      ),
    },
    sim: { bootDelayMs: 1_000 },
    daemon: { intervalMs: minutes(30) }, // the fallback timer (1.5 × 60 s) drives the checks
  });
  await h.daemon.start();
  await h.advance(5_000);
  const [outage, silent] = h.sim.live('quiet').map((i) => i.id) as [string, string];
  h.sim.brokenHeartbeats.set(outage, 'throw');
  h.sim.brokenHeartbeats.set(silent, 'hang');
  await h.advance(minutes(2));
  t.equal((await h.store.getInstance('quiet', silent))?.health_failures, 1, 'no answer in 30 s is a failure');
  t.equal((await h.store.getInstance('quiet', outage))?.health_failures, 0, 'an API error is not');
  await h.advance(minutes(4));
  t.notOk(h.sim.groups.get('quiet')?.has(silent), 'the silent instance is replaced after 3 timeouts');
  t.ok(h.sim.groups.get('quiet')?.has(outage), 'the provider outage condemns nothing');
  t.equal(h.live('quiet'), 2, 'idle_count kept');
  t.ok(h.log.lines.some((l) => l.instance === outage && String(l.msg).includes('not counted')));
  await h.daemon.stop();
});
