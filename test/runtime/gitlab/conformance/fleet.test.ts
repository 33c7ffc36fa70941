/**
 * End to end against the strict fake: JobIntake with the slot scheduler, the local provider
 * and real shell processes, so every request the daemon's job loop makes is checked (§0–§4) and
 * the job outcomes land in GitLab's terms.
 */
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { silentLogger } from '../../../../src/util/logger.js';
import { systemTime, scaledTime } from '../../../../src/util/time.js';
import { groupRefFor } from '../../../../src/model/group.js';
import { createLocalProvider } from '../../../../src/providers/local/index.js';
import { ProviderRegistry } from '../../../../src/providers/registry.js';
import { KnownHostsFile } from '../../../../src/runtime/connectors/known-hosts.js';
import { SshConnectorPool } from '../../../../src/runtime/connectors/ssh-connector.js';
import { JobIntake } from '../../../../src/runtime/job-intake.js';
import { GitlabClient } from '../../../../src/runtime/gitlab/client.js';
import { LedgerWriter, SlotScheduler } from '../../../../src/runtime/slots/index.js';
import { openSqliteStore } from '../../../../src/store/index.js';
import { fleetSpec } from '../../../helpers/fake-state.js';
import { fullJob, leanJob } from './payloads.js';
import { startStrictGitlab, type StrictGitlab } from './strict-gitlab.js';

const TOKEN = 'glrt-FleetConformance_abcdef0123';
const SECRET = 'Sup3r-s3cret-Value';

async function setup(t: Test, opts: { preemptive: boolean; readyInstance: boolean }) {
  const dir = t.testdir({});
  const store = await openSqliteStore(join(dir, 'state.db'));
  t.teardown(() => store.close());
  const fleet = fleetSpec({
    name: 'conf',
    executor: 'instance',
    docker: null,
    capacity_per_instance: 2,
    max_instances: 1,
    policy: [{ idle_count: opts.preemptive ? 2 : 0, preemptive_mode: opts.preemptive }],
    gitlab: { request_concurrency: 1 },
  });
  const provider = createLocalProvider({ stateDir: dir });
  const ref = groupRefFor(fleet);
  await provider.applyGroup(fleet);
  const scheduler = new SlotScheduler({
    ledger: new LedgerWriter(store),
    time: systemTime,
  });
  scheduler.configureFleet('conf', {
    capacityPerInstance: 2,
    maxUseCount: 0,
    maxInstances: 1,
    acquireTimeoutMs: 5000,
  });
  /** Brings up the fleet's one instance and hands it to the scheduler. */
  const addInstance = async () => {
    await provider.increase(ref, 1);
    const [group] = await provider.observe([ref]);
    const id = group!.instances[0]!.id;
    await store.putInstance({
      fleet: 'conf',
      id,
      provider: 'local',
      state: 'ready',
      created_at: new Date().toISOString(),
      use_count: 0,
      health_failures: 0,
      acquired: 0,
    });
    scheduler.addReadyInstance('conf', id, 0);
  };
  if (opts.readyInstance) await addInstance();

  const server = await startStrictGitlab({ runnerToken: TOKEN, longPollMs: 40 });
  t.teardown(() => server.close());
  const client = new GitlabClient({
    url: server.url,
    token: TOKEN,
    systemId: 's_00000000abcd',
    version: '0.1.0',
  });
  const done: string[] = [];
  const runner = new JobIntake(fleet, {
    scheduler,
    providers: new ProviderRegistry(() => provider),
    ssh: new SshConnectorPool({ knownHosts: new KnownHostsFile(join(dir, 'known_hosts.json')) }),
    client,
    token: TOKEN,
    systemId: 's_00000000abcd',
    version: '0.1.0',
    logger: silentLogger,
    time: scaledTime(0.01),
    checkIntervalMs: 20,
    onJobDone: (_f, job, outcome) => done.push(`${job.id}:${outcome.state}`),
  });
  return { server, runner, done, addInstance };
}

const ended = (s: StrictGitlab, id: number) => () => s.job(id).closed;
const finalBody = (s: StrictGitlab, id: number) =>
  s
    .job(id)
    .puts.filter((r) => r.kind === 'final')
    .at(-1)?.json;

t.test('success, script failure and a lean payload, through the whole job loop', async (t) => {
  const { server, runner, done } = await setup(t, { preemptive: true, readyInstance: true });
  server.enqueue(
    fullJob(101, {
      script: ['echo "hello from $CI_JOB_NAME"', 'echo "secret=$API_KEY"'],
      variables: [{ key: 'API_KEY', value: SECRET, masked: true }],
    }),
  );
  server.enqueue(leanJob(102, { script: ['echo "timeout is $CI_JOB_TIMEOUT"', 'exit 7'] }));
  server.enqueue(
    fullJob(103, { script: ['echo debug'], variables: [{ key: 'CI_DEBUG_TRACE', value: 'true' }] }),
  );
  await runner.start();
  await server.waitFor(() => [101, 102, 103].every((id) => server.job(id).closed), 'three jobs', 20_000);
  await runner.stop(1000);

  const ok = server.job(101);
  t.equal(ok.state, 'success', 'job 101 succeeded');
  t.match(ok.trace.toString(), 'hello from job-101');
  t.match(ok.trace.toString(), 'secret=[MASKED]');
  t.notMatch(ok.trace.toString(), SECRET);
  t.same(finalBody(server, 101)?.['exit_code'], undefined);

  const lean = server.job(102);
  t.equal(lean.state, 'failed', 'job 102 failed');
  t.match(lean.trace.toString(), 'timeout is 7200', 'runner_info.timeout 0 means 7200 s');
  t.match(finalBody(server, 102), { state: 'failed', failure_reason: 'script_failure', exit_code: 7 });
  t.equal(server.job(103).patches[0]?.query.get('debug_trace'), 'true');
  t.same(done.sort(), ['101:success', '102:failed', '103:success']);
  t.same(server.violations, []);
});

t.test('graceful cancel runs after_script as canceled; a hard cancel stops at once', async (t) => {
  const { server, runner } = await setup(t, { preemptive: true, readyInstance: true });
  const afterScript = ['echo "after_script sees $CI_JOB_STATUS"'];
  server.enqueue(fullJob(201, { script: ['echo started', 'sleep 30'], afterScript }));
  server.enqueue(fullJob(202, { script: ['echo started', 'sleep 30'], afterScript }));
  await runner.start();
  const started = (id: number) => () => server.job(id).trace.toString().includes('started');
  await server.waitFor(() => started(201)() && started(202)(), 'both jobs running', 15_000);
  server.cancel(201, 'graceful');
  server.cancel(202, 'hard');
  await server.waitFor(() => ended(server, 201)() && ended(server, 202)(), 'both ends', 15_000);
  await runner.stop(1000);

  const graceful = server.job(201);
  t.equal(graceful.state, 'canceled');
  t.match(graceful.trace.toString(), 'after_script sees canceled');
  t.match(finalBody(server, 201), { state: 'failed', failure_reason: 'unknown_failure' });
  const hard = server.job(202);
  t.equal(hard.state, 'canceled');
  t.ok(hard.abort, 'the runner was told to abort');
  t.notMatch(hard.trace.toString(), 'after_script sees');
  t.same(server.violations, []);
});

t.test('the running PUT goes out before the fleet has an instance; a cancel meanwhile is seen', async (t) => {
  const { server, runner, addInstance } = await setup(t, { preemptive: false, readyInstance: false });
  server.enqueue(fullJob(301, { script: ['echo ran'] }));
  server.enqueue(fullJob(302, { script: ['echo ran'] }));
  await runner.start();
  await server.waitFor(
    () => server.job(301).puts.length > 0 && server.job(302).puts.length > 0,
    'start PUTs',
    3000,
  );
  t.equal(server.job(301).puts[0]?.kind, 'start');
  server.cancel(302, 'hard');
  // The keep-alive (30 s of protocol time) meets 403 + Job-Status: canceled before any instance.
  await server.waitFor(ended(server, 302), 'the canceled job to end', 3000);
  t.notMatch(server.job(302).trace.toString(), 'ran');
  await addInstance();
  await server.waitFor(ended(server, 301), 'the job to run once the instance is up', 15_000);
  await runner.stop(1000);
  t.equal(server.job(301).state, 'success');
  t.match(server.job(301).trace.toString(), 'ran');
  t.same(server.violations, []);
});

t.test('a job with `run` steps is refused: failed / runner_system_failure / exit code 3', async (t) => {
  const { server, runner } = await setup(t, { preemptive: true, readyInstance: true });
  server.enqueue({
    ...fullJob(401, { script: [] }),
    run: JSON.stringify([{ name: 'hi', script: 'echo hi' }]),
  });
  await runner.start();
  await server.waitFor(ended(server, 401), 'the refusal', 10_000);
  await runner.stop(1000);
  t.match(finalBody(server, 401), { state: 'failed', failure_reason: 'runner_system_failure', exit_code: 3 });
  t.match(server.job(401).trace.toString(), '`run:` steps');
  t.same(server.violations, []);
});
