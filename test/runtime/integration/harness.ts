/**
 * The real manager (`startManager`, exactly what `runfleet watch` composes: daemon, job runtime,
 * HTTP server, fleets watcher) against the GitLab-compatible coordinator on 127.0.0.1, with one
 * fleet file written for the test. Trace timers run 100× faster (the protocol's 3 s update interval
 * becomes 30 ms), so a job's log, keep-alives and cancel checks move at test speed.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import {
  startCoordinator,
  type Coordinator,
  type CoordinatorJobView,
  type CoordinatorOptions,
} from '../../../src/devtools/coordinator/server.js';
import { exampleJob, type ExampleJobOptions } from '../../../src/devtools/coordinator/example-job.js';
import { startManager, type Manager } from '../../../src/cli/root.js';
import { memoryLogger, type LogLine } from '../../../src/util/logger.js';
import type { InstanceStatus } from '../../../src/daemon/status.js';
import type { ProviderBuilder } from '../../../src/providers/registry.js';
import { scaledTime } from '../../../src/util/time.js';
import { shortToken } from '../../../src/runtime/gitlab/runner-info.js';
import { descendants, waitFor } from '../../helpers/topology/processes.js';
import type { SshdInstance } from '../../helpers/topology/sshd.js';

/** What the harness needs of a tap test: teardowns, and the log dump when something failed. */
export type HarnessTest = Pick<Test, 'teardown' | 'passing' | 'comment'>;

const TOKEN_ENV = 'RUNFLEET_IT_TOKEN';

export interface HarnessOptions {
  /** The fleet file without its `gitlab` block (the harness adds it). */
  fleetYaml: string;
  fleetName: string;
  providers?: ProviderBuilder;
  /** Daemon tick while nothing moves. @default 1000 */
  intervalMs?: number;
  /** More environment for the manager (secrets fleet files reference). */
  env?: Record<string, string>;
  /** Coordinator options besides the runner token (artifact limits, object storage). */
  coordinator?: Omit<CoordinatorOptions, 'runnerTokens'>;
}

export interface Harness {
  coordinator: Coordinator;
  manager: Manager;
  /** State directory (state.db, known_hosts.json, system_id). */
  dir: string;
  /** Everything the manager logged. */
  logs: LogLine[];
  /** The fleet's runner short token: its directory under an instance's builds root. */
  shortToken: string;
  /** Queues a job with a project path of its own (builds dirs on the instance never collide). */
  enqueue(id: number, opts?: ExampleJobOptions): void;
  /**
   * Waits until the job's stored log shows `text`. Throws at once, with the log, if the job ends
   * (or reaches a final state) without it: a failure then says why rather than timing out.
   */
  logShows(id: number, text: string, timeoutMs?: number): Promise<CoordinatorJobView>;
  /** Waits until the job's final update arrived (success, failed or canceled). */
  finished(id: number, timeoutMs?: number): Promise<CoordinatorJobView>;
  instances(): Promise<InstanceStatus[]>;
  /** Waits until `n` instances are ready; returns them. */
  readyInstances(n: number, timeoutMs?: number): Promise<InstanceStatus[]>;
  /** Slots held by running jobs of the fleet right now. */
  acquired(): number;
}

const FINAL_STATES = new Set(['success', 'failed', 'canceled']);

/**
 * A static fleet of one sshd host, the instance executor, `capacity` slots kept idle. The static
 * provider reads the key from connector.key_path, as for on-premises hosts.
 */
export function staticFleetYaml(name: string, sshd: SshdInstance, capacity: number): string {
  return [
    `name: ${name}`,
    `provider: { type: static, hosts: ['${sshd.host}:${sshd.port}'] }`,
    'executor: instance',
    `capacity_per_instance: ${capacity}`,
    'max_instances: 1',
    `connector: { username: root, key_path: ${join(sshd.dir, 'userkey')} }`,
    'policy:',
    `  - idle_count: ${capacity}`,
    '    idle_time: 10m',
  ].join('\n');
}

export async function startHarness(t: HarnessTest, opts: HarnessOptions): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'rf-it-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const token = `glrt-it${randomBytes(12).toString('hex')}`;
  const coordinator = await startCoordinator({
    runnerTokens: [token],
    longPollMs: 1000,
    ...opts.coordinator,
  });
  t.teardown(() => coordinator.close());

  writeFileSync(
    join(dir, 'fleet.yaml'),
    `${opts.fleetYaml.trimEnd()}\ngitlab:\n  url: ${coordinator.url}\n  token: { env: ${TOKEN_ENV} }\n`,
  );
  const logs: LogLine[] = [];
  const manager = await startManager(
    { dir, state: join(dir, 'state.db'), color: false },
    {
      listen: '127.0.0.1:0',
      graceMs: 5000,
      intervalMs: opts.intervalMs ?? 1000,
      logger: memoryLogger(logs),
      env: { ...opts.env, [TOKEN_ENV]: token },
      // Both run on the scaled timers below: 5000 → 50 ms between empty job requests.
      checkIntervalMs: 5000,
      runtimeTime: scaledTime(0.01),
      ...(opts.providers ? { providers: opts.providers } : {}),
    },
  );
  t.teardown(() => manager.stop());
  t.teardown(() => {
    if (!t.passing())
      t.comment(
        `manager log (last 60 lines):\n${logs
          .slice(-60)
          .map((l) => JSON.stringify(l))
          .join('\n')}`,
      );
  });

  const instances = async () =>
    (await manager.daemon.status()).fleets.find((f) => f.name === opts.fleetName)?.instances ?? [];
  const project = `it-${process.pid}-${randomBytes(3).toString('hex')}`;
  return {
    coordinator,
    manager,
    dir,
    logs,
    shortToken: shortToken(token),
    enqueue: (id, o = {}) =>
      coordinator.enqueue(
        exampleJob(id, { projectName: `${project}-${id}`, serverUrl: coordinator.url, ...o }),
      ),
    async logShows(id, text, timeoutMs = 15_000) {
      const job = await coordinator.waitFor(
        id,
        (j) => j.log.includes(text) || FINAL_STATES.has(j.state),
        timeoutMs,
      );
      if (!job.log.includes(text))
        throw new Error(`job ${id} ended ${job.state} before its log showed ${text}:\n${job.log}`);
      return job;
    },
    finished: (id, timeoutMs = 20_000) =>
      coordinator.waitFor(
        id,
        (j) => FINAL_STATES.has(j.state) && j.updates.some((u) => u.state !== 'running'),
        timeoutMs,
      ),
    instances,
    async readyInstances(n, timeoutMs = 20_000) {
      let ready: InstanceStatus[] = [];
      const ok = await waitFor(
        async () => {
          ready = (await instances()).filter((i) => i.state === 'ready');
          return ready.length >= n;
        },
        timeoutMs,
        50,
      );
      if (!ok) {
        const recent = logs.slice(-20).map((l) => JSON.stringify(l));
        throw new Error(
          `${n} ready instance(s) expected; have ${JSON.stringify(await instances())}\n${recent.join('\n')}`,
        );
      }
      return ready;
    },
    acquired: () => manager.daemon.slots.demand(opts.fleetName).acquired,
  };
}

/**
 * Processes an instance's sshd runs that are not sshd itself: a job's shells and whatever they
 * started. Empty when nothing of any job is left on the instance (the pooled connection's own
 * `sshd: root@notty` processes may stay).
 */
export function jobProcessesOn(sshd: SshdInstance): { pid: number; cmdline: string }[] {
  const pid = Number(readPid(join(sshd.dir, 'sshd.pid')));
  if (!pid) throw new Error(`sshd of ${sshd.host} wrote no pid file`);
  const procs = descendants(pid);
  const out: { pid: number; cmdline: string }[] = [];
  for (const p of procs) {
    const cmdline = cmdlineOf(p);
    if (cmdline !== undefined && !cmdline.startsWith('sshd')) out.push({ pid: p, cmdline });
  }
  return out;
}

function readPid(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

function cmdlineOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return undefined;
  }
}
