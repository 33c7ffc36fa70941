/**
 * The fleet job loop end to end on the embedded default: a GitLab-compatible coordinator on
 * loopback, the slot scheduler, a real local sandbox instance and real shell processes.
 */
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { startCoordinator } from '../../src/devtools/coordinator/server.js';
import { exampleJob } from '../../src/devtools/coordinator/example-job.js';
import { memoryLogger, silentLogger, type LogLine } from '../../src/util/logger.js';
import { systemTime, scaledTime, type Time } from '../../src/util/time.js';
import { groupRefFor } from '../../src/model/group.js';
import { createLocalProvider } from '../../src/providers/local/index.js';
import { ProviderRegistry } from '../../src/providers/registry.js';
import { KnownHostsFile } from '../../src/runtime/connectors/known-hosts.js';
import { SshConnectorPool } from '../../src/runtime/connectors/ssh-connector.js';
import { JobIntake } from '../../src/runtime/job-intake.js';
import { GitlabClient } from '../../src/runtime/gitlab/client.js';
import { LedgerWriter, SlotScheduler } from '../../src/runtime/slots/index.js';
import { openSqliteStore } from '../../src/store/index.js';
import { fleetSpec } from '../helpers/fake-state.js';

const TOKEN = 'glrt-fleetrunnertest0000';

async function setup(
  t: Test,
  opts: {
    preemptive: boolean;
    concurrency?: number;
    capacity?: number;
    requestDelayMs?: number;
    /** Jobs GitLab cancels (graceful) the moment it hands them out: the first PUT meets `canceling`. */
    cancelOnAssign?: number[];
    tokenTtlSeconds?: number;
    logs?: LogLine[];
    rotated?: string[];
    /** The fleet's gitlab.check_interval, in force instead of the tests' 20 ms override. */
    checkInterval?: string;
    /** Sees every sleep the runner asks for, in the protocol's time (before scaling). */
    sleeps?: number[];
  },
) {
  const capacity = opts.capacity ?? 2;
  const dir = t.testdir({});
  const store = await openSqliteStore(join(dir, 'state.db'));
  t.teardown(() => store.close());
  const fleet = fleetSpec({
    name: 'loop',
    executor: 'instance',
    docker: null,
    capacity_per_instance: capacity,
    max_instances: 2,
    policy: [{ idle_count: opts.preemptive ? capacity : 0, preemptive_mode: opts.preemptive }],
    gitlab: {
      request_concurrency: opts.concurrency ?? 1,
      ...(opts.checkInterval ? { check_interval: opts.checkInterval } : {}),
    },
  });
  const provider = createLocalProvider({ stateDir: dir });
  const providers = new ProviderRegistry(() => provider);
  const ref = groupRefFor(fleet);
  await provider.applyGroup(fleet);
  await provider.increase(ref, 1);
  const [group] = await provider.observe([ref]);
  const instanceId = group!.instances[0]!.id;
  await store.putInstance({
    fleet: 'loop',
    id: instanceId,
    provider: 'local',
    state: 'ready',
    created_at: new Date().toISOString(),
    use_count: 0,
    health_failures: 0,
    acquired: 0,
  });
  const scheduler = new SlotScheduler({
    ledger: new LedgerWriter(store),
    time: systemTime,
  });
  scheduler.configureFleet('loop', {
    capacityPerInstance: capacity,
    maxUseCount: 0,
    maxInstances: 2,
    acquireTimeoutMs: 5000,
  });
  scheduler.addReadyInstance('loop', instanceId, 0);

  const coordinator = await startCoordinator({
    runnerTokens: [TOKEN],
    ...(opts.requestDelayMs ? { requestDelayMs: opts.requestDelayMs } : {}),
    ...(opts.tokenTtlSeconds ? { tokenTtlSeconds: opts.tokenTtlSeconds } : {}),
    onEvent: (e) => {
      if (e.type === 'assigned' && opts.cancelOnAssign?.includes(e.jobId)) {
        queueMicrotask(() => coordinator.cancel(e.jobId, 'graceful'));
      }
    },
  });
  t.teardown(() => coordinator.close());
  const client = new GitlabClient({
    url: coordinator.url,
    token: TOKEN,
    systemId: 's_000000000000',
    version: 'test',
  });
  const ssh = new SshConnectorPool({ knownHosts: new KnownHostsFile(join(dir, 'known_hosts.json')) });
  const done: string[] = [];
  const runner = new JobIntake(fleet, {
    scheduler,
    providers,
    ssh,
    client,
    token: TOKEN,
    systemId: 's_000000000000',
    version: 'test',
    // The trace's 3 s rhythm in 30 ms.
    time: recordSleeps(scaledTime(0.01), opts.sleeps),
    logger: opts.logs ? memoryLogger(opts.logs) : silentLogger,
    ...(opts.checkInterval ? {} : { checkIntervalMs: 20 }),
    onJobDone: (_f, job, outcome) => done.push(`${job.id}:${outcome.state}`),
    onTokenRotated: async (token) => void opts.rotated?.push(token),
  });
  return { coordinator, runner, scheduler, store, instanceId, done, client, fleet };
}

function recordSleeps(time: Time, sleeps: number[] | undefined): Time {
  if (!sleeps) return time;
  return { ...time, sleep: (ms, signal) => (sleeps.push(ms), time.sleep(ms, signal)) };
}

for (const [preemptive, concurrency] of [
  [true, 1],
  [false, 1],
  [true, 2],
] as const) {
  t.test(
    `jobs run on the fleet's instance and report back (preemptive ${preemptive}, request_concurrency ${concurrency})`,
    async (t) => {
      const { coordinator, runner, store, instanceId, done, client } = await setup(t, {
        preemptive,
        concurrency,
      });
      coordinator.enqueue(
        exampleJob(101, {
          script: ['echo "hello from $CI_JOB_NAME"', 'echo "secret is $API_KEY"'],
          variables: { API_KEY: { value: 's3cr3t-Value-123', masked: true } },
        }),
      );
      coordinator.enqueue(exampleJob(102, { script: ['echo failing', 'exit 7'] }));
      await runner.start();
      const ok = await coordinator.waitFor(101, (j) => j.state === 'success' || j.state === 'failed', 20_000);
      const bad = await coordinator.waitFor(
        102,
        (j) => j.state === 'success' || j.state === 'failed',
        20_000,
      );
      await runner.stop(1000);

      t.equal(ok.state, 'success', ok.log);
      t.match(ok.log, /hello from job-101/);
      t.match(ok.log, /secret is \[MASKED\]/);
      t.notMatch(ok.log, /s3cr3t-Value-123/);
      t.equal(ok.checksumOk, true, 'the final checksum matches the stored trace');

      t.equal(bad.state, 'failed');
      t.equal(bad.failure_reason, 'script_failure');
      t.equal(bad.exit_code, 7);

      t.same(done.sort(), ['101:success', '102:failed']);
      const row = await store.getInstance('loop', instanceId);
      t.equal(row?.use_count, 2, 'each job adds one use');
      t.equal(row?.acquired, 0);
      t.same(client.knownJobTokens, { live: 0, ended: 2 }, 'ended jobs leave the live token set');
    },
  );
}

t.test('a rejected runner token stops start() with a clear error and no token in it', async (t) => {
  const { runner } = await setup(t, { preemptive: true });
  // The coordinator knows TOKEN; make the runner present another one.
  const coordinator = await startCoordinator({ runnerTokens: ['glrt-someoneelse'] });
  t.teardown(() => coordinator.close());
  const wrong = new JobIntake(fleetSpec({ name: 'loop' }), {
    ...(runner as unknown as { deps: ConstructorParameters<typeof JobIntake>[1] }).deps,
    client: new GitlabClient({
      url: coordinator.url,
      token: TOKEN,
      systemId: 's_000000000000',
      version: 'test',
    }),
  });
  await t.rejects(wrong.start(), { code: 'GITLAB_AUTH' });
  await wrong.stop(0);
  try {
    await wrong.start();
  } catch (e) {
    t.notMatch(String((e as Error).message), new RegExp(TOKEN));
  }
});

t.test('a manager stop past the grace period ends a running job as runner_interrupted', async (t) => {
  const { coordinator, runner, done } = await setup(t, { preemptive: true });
  const payload = exampleJob(301, { script: ['echo started', 'sleep 30'] });
  // A server that lists runner_interrupted gets it as is (§3); others get unknown_failure.
  payload.features?.failure_reasons?.push('runner_interrupted');
  coordinator.enqueue(payload);
  await runner.start();
  await coordinator.waitFor(301, (j) => j.log.includes('started'), 20_000);
  await runner.stop(200);
  const job = await coordinator.waitFor(301, (j) => j.state === 'failed' || j.state === 'success', 20_000);
  t.equal(job.state, 'failed');
  t.equal(job.updates.at(-1)?.failure_reason, 'runner_interrupted', 'sent as runner_interrupted');
  t.match(job.log, /The runner manager stopped before the job finished/);
  t.same(done, ['301:failed']);
});

/**
 * Watches the runner's job requests: how many are open when each one starts, and what each
 * returned. `onEnd` runs after each request ended, with the count still open.
 */
function watchRequests(client: GitlabClient, onEnd?: (job: boolean, open: number) => void) {
  const w = { open: 0, max: 0, requests: 0, jobs: 0, empty: 0, openAtStart: [] as number[] };
  const requestJob = client.requestJob.bind(client);
  client.requestJob = async (signal, pushback) => {
    w.open++;
    w.requests++;
    w.max = Math.max(w.max, w.open);
    w.openAtStart.push(w.open);
    let job;
    try {
      job = await requestJob(signal, pushback);
      return job;
    } finally {
      w.open--;
      if (job) w.jobs++;
      else w.empty++;
      onEnd?.(job !== undefined, w.open);
    }
  };
  return w;
}

t.test(
  'adaptive request concurrency: ramps up while requests return jobs, up to request_concurrency',
  async (t) => {
    const { coordinator, runner, client } = await setup(t, {
      preemptive: true,
      concurrency: 4,
      capacity: 16,
      requestDelayMs: 50,
    });
    const ids = Array.from({ length: 40 }, (_, i) => 300 + i);
    for (const id of ids) coordinator.enqueue(exampleJob(id, { script: ['true'] }));
    // What the runner allows when each request starts, and the highest limit it computed.
    const allowed: number[] = [];
    let highest = 0;
    const w = watchRequests(client, () => (highest = Math.max(highest, runner.adaptiveLimit)));
    const requestJob = client.requestJob.bind(client);
    client.requestJob = (signal, pushback) => {
      allowed.push(runner.requestConcurrency);
      return requestJob(signal, pushback);
    };
    await runner.start();
    const jobs = await Promise.all(
      ids.map((id) => coordinator.waitFor(id, (j) => j.state === 'success' || j.state === 'failed', 30_000)),
    );
    await runner.stop(1000);
    t.same(
      jobs.map((j) => j.state),
      ids.map(() => 'success'),
    );
    t.equal(w.openAtStart[0], 1, 'the first request goes alone');
    t.equal(allowed[1], 2, 'one job lets a second request open (limit 1.1, rounded up)');
    t.equal(Math.max(...allowed), 4, 'requests returning jobs raise it to request_concurrency');
    t.ok(w.max > 1, `requests were open at once (${w.max})`);
    t.ok(w.max <= 4, `never more than request_concurrency open (${w.max})`);
    t.equal(highest, 4, 'the computed limit reached request_concurrency');
  },
);

t.test('adaptive request concurrency: one request at a time once a request returns none', async (t) => {
  const { coordinator, runner, client } = await setup(t, {
    preemptive: true,
    concurrency: 8,
    capacity: 16,
    requestDelayMs: 20,
  });
  const ids = Array.from({ length: 40 }, (_, i) => 350 + i);
  for (const id of ids) coordinator.enqueue(exampleJob(id, { script: ['true'] }));
  // From the first moment the queue answered empty and no request was open, only the first loop
  // may ask (the others park until a job comes): count what opens after that point.
  let quiet: { max: number; requests: number } | undefined;
  let reached: () => void;
  const enough = new Promise<void>((resolve) => (reached = resolve));
  const w = watchRequests(client, (job, open) => {
    if (quiet) {
      quiet.requests++;
      if (quiet.requests >= 6) reached();
    } else if (!job && open === 0 && w.jobs === ids.length) {
      quiet = { max: 0, requests: 0 };
    }
  });
  const requestJob = client.requestJob.bind(client);
  client.requestJob = (signal, pushback) => {
    if (quiet) quiet.max = Math.max(quiet.max, w.open + 1);
    return requestJob(signal, pushback);
  };
  await runner.start();
  await enough;
  t.equal(w.jobs, ids.length);
  t.ok(w.max > 1, `several requests were open while the queue had jobs (${w.max})`);
  t.equal(quiet?.max, 1, 'an empty queue is asked by one request at a time');
  t.equal(runner.requestConcurrency, 1);
  t.ok(runner.adaptiveLimit > 1, 'the limit itself decays 5 % per empty answer, as GitLab Runner');
  await runner.stop(1000);
});

for (const preemptive of [true, false]) {
  t.test(
    `adaptive request concurrency never asks for more jobs than free slots (preemptive ${preemptive})`,
    async (t) => {
      // One instance of 2 slots; non-preemptive fleets may hold max_instances (2) x 2 jobs, waiting.
      const { coordinator, runner, client, scheduler } = await setup(t, {
        preemptive,
        concurrency: 8,
        capacity: 2,
        requestDelayMs: 10,
      });
      const slots = preemptive ? 2 : 4;
      const ids = Array.from({ length: 12 }, (_, i) => 400 + i);
      for (const id of ids) coordinator.enqueue(exampleJob(id, { script: ['sleep 0.2'] }));
      // A slot is held from a job's arrival until its release (which frees it at once).
      let released = 0;
      const release = scheduler.release.bind(scheduler);
      scheduler.release = (a, o) => {
        released++;
        return release(a, o);
      };
      const held: number[] = [];
      const w = watchRequests(client);
      const requestJob = client.requestJob.bind(client);
      client.requestJob = (signal, pushback) => {
        // Slots held by the jobs received, plus the requests open with this one.
        held.push(w.jobs - released + w.open + 1);
        return requestJob(signal, pushback);
      };
      await runner.start();
      const jobs = await Promise.all(
        ids.map((id) =>
          coordinator.waitFor(id, (j) => j.state === 'success' || j.state === 'failed', 30_000),
        ),
      );
      await runner.stop(1000);
      t.same(
        jobs.map((j) => j.state),
        ids.map(() => 'success'),
      );
      t.ok(
        Math.max(...held) <= slots,
        `jobs held plus requests open stay within ${slots} (${Math.max(...held)})`,
      );
    },
  );
}

t.test("an empty queue is asked again after the fleet's check_interval; a reload changes it", async (t) => {
  const sleeps: number[] = [];
  const { runner, client, fleet } = await setup(t, { preemptive: true, checkInterval: '2s', sleeps });
  let empty = 0;
  let reached: () => void = () => undefined;
  let enough = new Promise<void>((resolve) => (reached = resolve));
  watchRequests(client, (job) => {
    if (!job && ++empty % 3 === 0) reached();
  });
  await runner.start();
  await enough;
  t.ok(sleeps.length >= 2, `the runner paused after its empty answers (${sleeps.length})`);
  t.strictSame(new Set(sleeps), new Set([2000]), 'each pause is check_interval: 2s');
  // The reloaded spec applies from the next pause on (the one in progress ends as it began).
  runner.update({ ...fleet, gitlab: { ...fleet.gitlab!, check_interval: '700ms' } });
  enough = new Promise<void>((resolve) => (reached = resolve));
  await enough;
  const after = sleeps.slice(sleeps.lastIndexOf(2000) + 1);
  t.ok(after.length >= 1, `pauses after the reload (${after.length})`);
  t.strictSame(new Set(after), new Set([700]), 'then each pause is 700ms');
  await runner.stop(1000);
});

t.test('a canceling answer to the first PUT: the job ends canceled and nothing of it runs', async (t) => {
  const { coordinator, runner, done, client } = await setup(t, { preemptive: true, cancelOnAssign: [401] });
  coordinator.enqueue(exampleJob(401, { script: ['echo "must-not-run:$CI_JOB_ID"'] }));
  await runner.start();
  const job = await coordinator.waitFor(401, (j) => j.state === 'canceled' && j.updates.length > 1, 20_000);
  await runner.stop(1000);
  t.equal(job.updates[0]?.state, 'running', 'the first PUT went out');
  t.equal(job.updates.at(-1)?.state, 'failed', 'then the final update, as canceled');
  t.notMatch(job.log, 'must-not-run');
  t.match(job.log, 'ERROR: Job failed: canceled');
  t.same(done, ['401:failed']);
  t.equal(client.knownJobTokens.live, 0, 'a job canceled before it ran leaves the live token set');
});

t.test('while a job waits for an instance: a graceful cancel and the job deadline end it', async (t) => {
  const { coordinator, runner, done } = await setup(t, { preemptive: false, capacity: 1 });
  coordinator.enqueue(exampleJob(501, { script: ['echo "busy:$CI_JOB_ID"', 'sleep 30'] }));
  await runner.start();
  await coordinator.waitFor(501, (j) => j.log.includes('busy:501'), 20_000);
  // The only slot is taken: these two wait for an instance.
  coordinator.enqueue(exampleJob(502, { script: ['echo "ran:$CI_JOB_ID"'] }));
  await coordinator.waitFor(502, (j) => j.state === 'running', 20_000);
  coordinator.cancel(502, 'graceful');
  const canceled = await coordinator.waitFor(
    502,
    (j) => j.state === 'canceled' && j.updates.length > 1,
    20_000,
  );
  t.notMatch(canceled.log, 'ran:502', 'nothing of the canceled job ran');
  t.match(canceled.log, 'ERROR: Job failed: canceled');

  coordinator.enqueue(exampleJob(503, { timeout: 1, script: ['echo "ran:$CI_JOB_ID"'] }));
  const timedOut = await coordinator.waitFor(503, (j) => j.state === 'failed', 20_000);
  t.equal(timedOut.failure_reason, 'job_execution_timeout', 'the deadline counts the wait for an instance');
  t.match(timedOut.log, 'execution took longer than 1 seconds');
  t.notMatch(timedOut.log, 'ran:503');

  coordinator.cancel(501, 'hard');
  await runner.stop(1000);
  t.same(done.sort(), ['501:failed', '502:failed', '503:failed']);
});

t.test('an expiring runner token is rotated before it expires; later calls use the new one', async (t) => {
  const logs: LogLine[] = [];
  const rotated: string[] = [];
  // 60 s tokens; the runner's clock runs 100× fast, so the rotation (at 3/4) comes after ~0.45 s.
  const { coordinator, runner, done, client } = await setup(t, {
    preemptive: true,
    tokenTtlSeconds: 60,
    logs,
    rotated,
  });
  await runner.start();
  const deadline = Date.now() + 15_000;
  while (rotated.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.ok(rotated.length >= 2, `rotated again after each new expiry (${rotated.length})`);
  // Rotations go on every ~0.45 s: GitLab may have issued the next token a moment before the
  // runner's callback records it, so look at a moment when no rotation is half-way.
  const newestOnly = () => {
    const held = coordinator.runnerTokens();
    return held.length === 1 && held[0] === rotated.at(-1);
  };
  while (!newestOnly() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.ok(newestOnly(), 'GitLab holds only the newest token', { held: coordinator.runnerTokens().length });
  t.notOk(coordinator.runnerTokens().includes(TOKEN), 'the configured token is revoked');
  coordinator.enqueue(exampleJob(601, { script: ['echo "with the new token"'] }));
  const job = await coordinator.waitFor(601, (j) => j.state === 'success' || j.state === 'failed', 20_000);
  t.equal(job.state, 'success', 'job requests and updates go out with the rotated token');
  await runner.stop(1000);
  t.same(done, ['601:success']);
  const text = JSON.stringify(logs);
  t.match(text, 'runner authentication token rotated');
  for (const tok of [TOKEN, ...rotated]) t.notMatch(text, tok, 'no token in the log');
  t.equal(client.scrub(`x ${TOKEN} ${rotated[0]} y`), 'x [MASKED] [MASKED] y', 'old tokens stay scrubbed');
});
