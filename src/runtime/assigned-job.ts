/**
 * Runs one job that GitLab assigned, on the instance slot it acquired: reports `running`, streams
 * the masked log through the trace, runs the stages with the fleet's executor, and sends the one
 * final update. Never throws: every failure ends as a GitLab failure reason.
 */
import type { Fleet } from '../model/fleet.js';
import type { ConnectInfo } from '../providers/provider.js';
import type { SshConnectorPool } from './connectors/ssh-connector.js';
import { executorFor, connectorFor } from './executor-factory.js';
import { ArtifactStages } from './executors/artifact-stages.js';
import type { Executor, JobOutput } from './executors/executor.js';
import type { Connector } from './connectors/connector.js';
import { cachesSomething } from './cache/cache-key.js';
import type { CacheStores } from './cache/cache-stores.js';
import { JobCaches } from './cache/job-caches.js';
import { jobVariables } from './script/variables.js';
import { runStages, type JobResult } from './executors/stage-runner.js';
import type { GitlabClient } from './gitlab/client.js';
import type { JobPayload } from './gitlab/job.js';
import type { Time } from '../util/time.js';
import { unsupportedJobWarnings } from './gitlab/refuse.js';
import { JobTrace } from './gitlab/trace.js';
import { style } from './gitlab/trace-format.js';
import { RUNFLEET_REVISION } from '../version.js';

export interface AssignedJobDeps {
  client: GitlabClient;
  ssh: SshConnectorPool;
  version: string;
  /** For the log banner (`CI_RUNNER_SHORT_TOKEN`-style, never the whole token). */
  shortToken: string;
  systemId: string;
  /** Trace time; tests pass scaled ones. */
  time?: Time;
  /** Where jobs' caches are kept; without it caches are not restored or saved. */
  caches?: CacheStores;
  /** Sees every chunk of job output as it arrives, before masking (benchmarks, never logged). */
  onOutput?: (jobId: number, chunk: Buffer | string) => void;
}

export interface RunAssignedJob {
  job: JobPayload;
  fleet: Fleet;
  /** Fetched from the provider right before the job (never cached). */
  connect: () => Promise<ConnectInfo>;
  slot: number;
  instanceId: string;
  /** Manager shutdown past its grace period: stop the job hard. */
  signal?: AbortSignal;
  /**
   * When the job's deadline falls (`time.now()` ms), set when the job arrived: the wait for an
   * instance counted. @default runner_info.timeout from the start of the run
   */
  deadlineAt?: number;
  /** GitLab's CA chain (PEM) when the manager trusts GitLab through its own CA file. */
  tlsCaChain?: string;
}

/** `dropped`: GitLab no longer wanted the job when it was started; nothing ran. */
export type JobOutcome = JobResult | { state: 'dropped' };

/** A job whose `running` PUT went out and whose trace loop runs, with GitLab's cancel requests. */
export interface StartedJob {
  trace: JobTrace;
  /** Aborted on `Job-Status: canceling`: stop the user script, run after_script. */
  graceful: AbortSignal;
  /** Aborted when GitLab aborts the job (403, `Job-Status: canceled`), or by `stopHard()`. */
  hard: AbortSignal;
  stopHard(): void;
}

/**
 * The `running` PUT GitLab Runner sends right after receiving a job, before any work (§3 step 1),
 * then the trace loop, so a job waiting for an instance is kept alive and its cancel is seen.
 * @returns 'dropped' when GitLab no longer wants the job (nothing more is sent for it).
 */
export async function startJob(
  job: JobPayload,
  deps: Pick<AssignedJobDeps, 'client' | 'time'>,
): Promise<StartedJob | 'dropped'> {
  const graceful = new AbortController();
  const hard = new AbortController();
  const trace = new JobTrace({
    client: deps.client,
    job,
    time: deps.time,
    onCancel: (mode) => (mode === 'graceful' ? graceful.abort() : hard.abort()),
  });
  const start = await trace.start();
  if (start === 'drop') {
    await trace.stop();
    return 'dropped';
  }
  if (start === 'cancel') graceful.abort();
  return { trace, graceful: graceful.signal, hard: hard.signal, stopHard: () => hard.abort() };
}

/**
 * Runs the job on its instance and sends the final update. `started` is the job as `startJob()`
 * left it; without it the job is started here.
 */
export async function runAssignedJob(
  req: RunAssignedJob,
  deps: AssignedJobDeps,
  started?: StartedJob,
): Promise<JobOutcome> {
  const job = started ?? (await startJob(req.job, deps));
  if (job === 'dropped') return { state: 'dropped' };
  const { trace, graceful, hard } = job;
  const stopHard = () => job.stopHard();
  if (req.signal?.aborted) stopHard();
  req.signal?.addEventListener('abort', stopHard, { once: true });
  try {
    trace.writeSystem(
      style.banner({
        version: deps.version,
        revision: RUNFLEET_REVISION,
        runnerName: `runfleet fleet ${req.fleet.name}`,
        shortToken: deps.shortToken,
        systemId: deps.systemId,
      }),
    );
    for (const warning of unsupportedJobWarnings(req.job, req.fleet.executor)) trace.warning(warning);
    trace.heading(`Preparing the "${req.fleet.executor}" executor on instance ${req.instanceId}`);
    const output: JobOutput = {
      write: (chunk, stream) => {
        deps.onOutput?.(req.job.id, chunk);
        trace.write(chunk, stream);
      },
      section: async (name, fn) => {
        trace.sectionStart(name);
        try {
          return await fn();
        } finally {
          trace.flush();
          trace.sectionEnd(name);
        }
      },
      system: (text) => trace.writeSystem(text),
    };
    let result = await runOnInstance(req, deps, output, graceful, hard);
    if (req.signal?.aborted && result.status === 'canceled') {
      // Stopped by this manager's shutdown, not by the user: GitLab's runner_interrupted (sent as
      // unknown_failure where the server does not list it).
      result = { ...result, failureReason: 'runner_interrupted', message: 'the runner manager was stopped' };
      trace.error('The runner manager stopped before the job finished.');
    }
    trace.flush();
    await trace.finish(
      result.state === 'success'
        ? { state: 'success' }
        : { state: 'failed', failureReason: result.failureReason, exitCode: result.exitCode },
    );
    return result;
  } finally {
    req.signal?.removeEventListener('abort', stopHard);
  }
}

async function runOnInstance(
  req: RunAssignedJob,
  deps: AssignedJobDeps,
  output: JobOutput,
  cancel: AbortSignal,
  signal: AbortSignal,
): Promise<JobResult> {
  let executor: ReturnType<typeof executorFor>;
  let artifacts: ArtifactStages;
  let caches: JobCaches | undefined;
  try {
    const info: ConnectInfo = await req.connect();
    const connector = connectorFor(info, deps.ssh, req.fleet.connector.max_sessions);
    const built = executorFor(req.fleet, info, connector, req.slot, deps.ssh.time, deps.shortToken);
    executor = built;
    // The project directory is on the instance host for both executors (docker mounts it).
    artifacts = new ArtifactStages({
      job: req.job,
      api: deps.client.artifacts,
      connector,
      projectDir: () => built.stageEnvironment('get_sources').layout.projectDir,
      time: deps.ssh.time,
    });
    caches = await jobCaches(req, deps, info, connector, built, output);
  } catch (e) {
    const message = `cannot reach instance ${req.instanceId}: ${(e as Error).message}`;
    output.write(`\x1b[31;1mERROR: Job failed (system failure): ${message}\x1b[0;m\n`, 'stdout');
    return { state: 'failed', status: 'failed', failureReason: 'runner_system_failure', message };
  }
  return runStages(req.job, executor, output, {
    cancel,
    signal,
    time: deps.ssh.time,
    ...(req.deadlineAt !== undefined ? { deadlineAt: req.deadlineAt } : {}),
    ...(req.tlsCaChain ? { tlsCaChain: req.tlsCaChain } : {}),
    artifacts,
    ...(caches ? { caches } : {}),
  });
}

/** The job's cache stages, or undefined without caches; a store that cannot be set up is a warning. */
async function jobCaches(
  req: RunAssignedJob,
  deps: AssignedJobDeps,
  info: ConnectInfo,
  connector: Connector,
  executor: Executor,
  output: JobOutput,
): Promise<JobCaches | undefined> {
  if (!deps.caches || !(req.job.cache ?? []).some(cachesSomething)) return undefined;
  let store;
  try {
    store = await deps.caches.forJob({
      fleet: req.fleet,
      info,
      connector,
      job: req.job,
      shortToken: deps.shortToken,
    });
  } catch (e) {
    output.write(
      `\x1b[0;33mWARNING: caches are not restored or saved: ${(e as Error).message}\x1b[0;m\n`,
      'stdout',
    );
    return undefined;
  }
  return new JobCaches(req.job, {
    store,
    connector,
    maxUploadedArchiveSize: req.fleet.cache?.max_uploaded_archive_size ?? 0,
    site: () => {
      // Caches move on the host: the docker executor's host stages see the host's paths.
      const env = executor.stageEnvironment('get_sources');
      const vars = jobVariables(req.job, { ...env, jobStatus: 'running' });
      return { projectDir: env.layout.projectDir, variables: new Map(vars.map((v) => [v.key, v.value])) };
    },
  });
}
