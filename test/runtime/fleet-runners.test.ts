/**
 * FleetRunners keeps one GitLab runner per fleet with a `gitlab` block: a missing or refused token
 * is reported (without the token) and retried, never thrown; a fixed token starts the runner.
 */
import { join } from 'node:path';
import { KnownHostsFile } from '../../src/runtime/connectors/known-hosts.js';
import { SshConnectorPool } from '../../src/runtime/connectors/ssh-connector.js';
import t from 'tap';
import { startCoordinator } from '../../src/devtools/coordinator/server.js';
import { exampleJob } from '../../src/devtools/coordinator/example-job.js';
import { memoryLogger, silentLogger, type LogLine } from '../../src/util/logger.js';
import { DaemonMetrics } from '../../src/daemon/metrics.js';
import { systemTime, manualTime } from '../../src/util/time.js';
import { createLocalProvider } from '../../src/providers/local/index.js';
import { ProviderRegistry } from '../../src/providers/registry.js';
import { FleetRunners, type FleetRunnersOptions } from '../../src/runtime/fleet-runners.js';
import type { StateStore } from '../../src/store/store.js';
import { GitlabClient } from '../../src/runtime/gitlab/client.js';
import { LedgerWriter, SlotScheduler } from '../../src/runtime/slots/index.js';
import { openSqliteStore } from '../../src/store/index.js';
import { fleetSpec } from '../helpers/fake-state.js';

const TOKEN = 'glrt-jobruntimetest00000';

/** Runners on real time against local instances, polling every 20 ms, logging into `lines`. */
function realTimeRunners(
  dir: string,
  store: StateStore,
  lines: LogLine[],
  more: Partial<FleetRunnersOptions>,
): FleetRunners {
  return new FleetRunners({
    scheduler: new SlotScheduler({ ledger: new LedgerWriter(store), time: systemTime }),
    providers: new ProviderRegistry(() => createLocalProvider({ stateDir: dir })),
    ssh: new SshConnectorPool({ knownHosts: new KnownHostsFile(join(dir, 'known_hosts.json')) }),
    client: (o) => new GitlabClient(o),
    stateDir: dir,
    time: systemTime,
    logger: memoryLogger(lines),
    version: 'test',
    checkIntervalMs: 20,
    ...more,
  });
}

t.test('a missing or refused token is reported and retried; a good one starts the runner', async (t) => {
  const dir = t.testdir({});
  const store = await openSqliteStore(':memory:');
  t.teardown(() => store.close());
  const coordinator = await startCoordinator({ runnerTokens: [TOKEN] });
  t.teardown(() => coordinator.close());
  const clock = manualTime('2026-11-27T12:00:00Z');
  const env: NodeJS.ProcessEnv = {};
  // A clock the test moves (retry pauses) with real timers (the runner polls a real coordinator).
  const time = { ...systemTime, now: () => clock.now() };
  const scheduler = new SlotScheduler({ ledger: new LedgerWriter(store), time });
  const runtime = new FleetRunners({
    scheduler,
    providers: new ProviderRegistry(() => createLocalProvider({ stateDir: dir })),
    ssh: new SshConnectorPool({ knownHosts: new KnownHostsFile(join(dir, 'known_hosts.json')) }),
    client: (o) => new GitlabClient(o),
    stateDir: dir,
    time,
    logger: silentLogger,
    version: 'test',
    env,
    checkIntervalMs: 20,
  });
  t.teardown(() => runtime.stop(0));
  const fleet = fleetSpec({
    name: 'ci',
    executor: 'instance',
    docker: null,
    gitlab: { url: coordinator.url, token: { env: 'CI_RUNNER_TOKEN' } },
  });

  await runtime.sync([fleet]);
  t.match(runtime.status('ci'), { state: 'failing', error: /CI_RUNNER_TOKEN is not set/ });

  env.CI_RUNNER_TOKEN = 'glrt-notthetoken000000000';
  await runtime.sync([fleet]);
  t.match(
    runtime.status('ci'),
    { state: 'failing', error: /CI_RUNNER_TOKEN is not set/ },
    'retried only after a pause',
  );
  clock.advance(11_000);
  await runtime.sync([fleet]);
  const refused = runtime.status('ci');
  t.equal(refused?.state, 'failing');
  t.notMatch(refused?.error, /glrt-/, 'the token never shows');

  env.CI_RUNNER_TOKEN = TOKEN;
  clock.advance(60_000);
  await runtime.sync([fleet]);
  t.same(runtime.status('ci'), { state: 'running', jobs: 0 });
  t.equal(runtime.status('other'), undefined, 'fleets without gitlab have no runner');

  await runtime.sync([]);
  t.equal(runtime.status('ci'), undefined, 'a removed fleet loses its runner');
});

t.test('a failed job request shows in the log and in gitlab_runner_api_request_statuses_total', async (t) => {
  const dir = t.testdir({});
  const store = await openSqliteStore(':memory:');
  t.teardown(() => store.close());
  const coordinator = await startCoordinator({ runnerTokens: [TOKEN] });
  t.teardown(() => coordinator.close());
  const lines: LogLine[] = [];
  const metrics = new DaemonMetrics('s_000000000000');
  const runtime = realTimeRunners(dir, store, lines, {
    env: { CI_RUNNER_TOKEN: TOKEN },
    onApiRequest: (fleet, endpoint, status) => metrics.apiRequest(fleet, endpoint, status),
  });
  t.teardown(() => runtime.stop(0));
  coordinator.inject({ kind: 'status', route: 'request', status: 409, count: 2 });
  await runtime.sync([
    fleetSpec({
      name: 'ci',
      executor: 'instance',
      docker: null,
      gitlab: { url: coordinator.url, token: { env: 'CI_RUNNER_TOKEN' } },
    }),
  ]);
  const counted = (status: number) =>
    new RegExp(
      `gitlab_runner_api_request_statuses_total\\{runner="ci",system_id="s_000000000000",endpoint="request_job",status="${status}"\\} (\\d+)`,
    );
  let text = '';
  for (let i = 0; i < 500; i++) {
    text = await metrics.text();
    if (Number(counted(204).exec(text)?.[1] ?? 0) > 0) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  t.match(text, counted(409), 'the refused requests are counted by status');
  t.match(counted(409).exec(text)?.[1], '2');
  t.match(text, counted(204), 'and the empty answers after them');
  const failed = lines.filter((l) => l.msg === 'Checking for jobs... failed');
  t.equal(failed.length, 2, 'each failed poll is logged');
  t.match(failed[0], { level: 'warn', fleet: 'ci', component: 'gitlab', status: 409 });
  t.notMatch(JSON.stringify(lines), /glrt-/, 'no token in the log');
});

t.test(
  'a lost lease stops the fleet’s job requests at once; owned again, its runner starts again',
  async (t) => {
    const dir = t.testdir({});
    const store = await openSqliteStore(':memory:');
    t.teardown(() => store.close());
    const OTHER = 'glrt-jobruntimeother0000';
    const lostOne = await startCoordinator({ runnerTokens: [TOKEN] });
    const kept = await startCoordinator({ runnerTokens: [OTHER] });
    t.teardown(() => Promise.all([lostOne.close(), kept.close()]));
    const lines: LogLine[] = [];
    const owned = new Set(['ci', 'other']);
    const runtime = realTimeRunners(dir, store, lines, {
      env: { CI_RUNNER_TOKEN: TOKEN, OTHER_TOKEN: OTHER },
      owns: (fleet) => owned.has(fleet),
    });
    t.teardown(() => runtime.stop(0));
    const fleet = (name: string, url: string, env: string) =>
      fleetSpec({ name, executor: 'instance', docker: null, gitlab: { url, token: { env } } });
    const fleets = [fleet('ci', lostOne.url, 'CI_RUNNER_TOKEN'), fleet('other', kept.url, 'OTHER_TOKEN')];
    await runtime.sync(fleets);
    t.same(runtime.status('ci'), { state: 'running', jobs: 0 });
    const polls = (c: typeof kept) =>
      c.requests().filter((r) => r.url.startsWith('/api/v4/jobs/request')).length;

    owned.delete('ci');
    runtime.ownershipLost(['ci']);
    t.equal(runtime.status('ci'), undefined, 'no runner for the lost fleet');
    t.ok(
      lines.some(
        (l) =>
          l.msg === 'stopping the job runner of a fleet' && l.fleet === 'ci' && l.reason === 'lease lost',
      ),
      'logged with its reason',
    );
    // A pass whose view was computed before the loss does not bring the runner back.
    await runtime.sync(fleets);
    t.equal(runtime.status('ci'), undefined, 'a stale view does not restart it');
    lostOne.enqueue(exampleJob(7));
    // The other fleet's runner polls on: many of its polls later, the lost fleet's job is untaken.
    const from = polls(kept);
    while (polls(kept) < from + 20) await new Promise((r) => setTimeout(r, 10));
    t.equal(lostOne.job(7)?.state, 'pending', 'the lost fleet’s job is not asked for');

    owned.add('ci');
    await runtime.sync(fleets);
    t.same(runtime.status('ci'), { state: 'running', jobs: 0 }, 'owned again: its runner runs again');
  },
);
