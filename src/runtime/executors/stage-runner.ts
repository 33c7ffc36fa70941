/**
 * Runs a job's stages in order on an executor and sorts the outcome into what GitLab expects
 * (docs/gitlab-job-api.md §5, "Stages", "Timeouts", "Results"): a non-zero exit is `script_failure`
 * with its exit code, the job deadline is `job_execution_timeout`, an instance that fails is
 * `runner_system_failure`. `after_script` runs once a step was reached, whatever happened, with
 * `CI_JOB_STATUS` telling how the job ended.
 */
import { constants } from 'node:os';
import type { FailureReason, JobPayload } from '../gitlab/job.js';
import { jobTimeoutSeconds } from '../script/layout.js';
import {
  buildStageScript,
  hasAfterScript,
  skippedStageOutput,
  stageHasWork,
  stepStages,
  type StageName,
} from '../script/stage-script.js';
import type { JobStatus } from '../script/variables.js';
import { gitSettings, SettingsReader, stageTimeoutMs } from '../script/build-settings.js';
import { resolveFeatureFlags } from '../script/feature-flags.js';
import { jobVariable } from '../script/layout.js';
import type { ArtifactStages } from './artifact-stages.js';
import { isBuildError, type Executor, type JobOutput, type StageResult } from './executor.js';
import { firstAbort, withTimeout } from '../../util/abort.js';
import { systemTime, type Time } from '../../util/time.js';
import type { CacheStages } from '../cache/job-caches.js';

export interface RunStagesOptions {
  /**
   * Hard stop (GitLab answered `canceled` or 403, or the manager must stop now): the running stage
   * is killed and nothing else runs, not even `after_script`.
   */
  signal?: AbortSignal;
  /**
   * Graceful cancel (`Job-Status: canceling`): the running step is killed, then `after_script`
   * runs with `CI_JOB_STATUS=canceled`.
   */
  cancel?: AbortSignal;
  /** The job deadline, counted from now. @default runner_info.timeout seconds (≤ 0 means 7200 s) */
  timeoutMs?: number;
  /**
   * The job deadline as a time (`time.now()` ms) when it started earlier, at the job's arrival:
   * waiting for an instance counts (§5, "Timeouts"). Wins over `timeoutMs`.
   */
  deadlineAt?: number;
  /** Limit of `after_script` without RUNNER_AFTER_SCRIPT_TIMEOUT. @default 300000 (5 min, as GitLab) */
  afterScriptTimeoutMs?: number;
  /** Limit of `cleanup_file_variables`. @default 30000 */
  cleanupTimeoutMs?: number;
  /** GitLab's CA chain (PEM), for `CI_SERVER_TLS_CA_FILE`. */
  tlsCaChain?: string;
  /** Runs the job deadline. @default systemTime */
  time?: Time;
  /** The job's cache stages, run by the manager (runtime/cache); without it caches are not touched. */
  caches?: CacheStages;
  /** download_artifacts before the first step, upload_artifacts_* after after_script (§6). */
  artifacts?: ArtifactStages;
}

export interface JobResult {
  state: 'success' | 'failed';
  /** How the job ended; `canceled` and `timedout` are failures. */
  status: Exclude<JobStatus, 'running'>;
  /** Set when `state` is `failed`. A cancel reports `unknown_failure`, as gitlab-runner does. */
  failureReason?: FailureReason;
  /** The failing script's exit code, with `script_failure`. */
  exitCode?: number;
  /** One line for the log or a metric label; no secrets. */
  message: string;
}

const RED = '\x1b[31;1m';
const GREEN = '\x1b[32;1m';
const CYAN = '\x1b[36;1m';
const YELLOW = '\x1b[0;33m';
const RESET = '\x1b[0;m';

/** The heading GitLab Runner prints when a stage starts (`R:common/build.go` GetStageDescription). */
export function stageHeading(stage: StageName): string {
  switch (stage) {
    case 'prepare_script':
      return 'Preparing environment';
    case 'get_sources':
      return 'Getting source from Git repository';
    case 'after_script':
      return 'Running after_script';
    case 'cleanup_file_variables':
      return 'Cleaning up project directory and file based variables';
    default:
      return `Executing "${stage}" stage of the job script`;
  }
}

/** Exit code of a process ended by `signal`, the way shells report it (128 + n). */
function signalExitCode(signal: string | undefined): number {
  const n = signal ? (constants.signals as Record<string, number>)[signal] : undefined;
  return 128 + (n ?? 0);
}

/** Runs every stage of `job` on `executor`; never throws. Always calls `executor.cleanup()`. */
export async function runStages(
  job: JobPayload,
  executor: Executor,
  output: JobOutput,
  opts: RunStagesOptions = {},
): Promise<JobResult> {
  const time = opts.time ?? systemTime;
  const hard = opts.signal ?? new AbortController().signal;
  const cancel = opts.cancel ?? new AbortController().signal;
  const jobTimeoutMs = jobTimeoutSeconds(job) * 1000;
  const timeoutMs =
    opts.deadlineAt !== undefined
      ? Math.max(0, opts.deadlineAt - time.now().getTime())
      : (opts.timeoutMs ?? jobTimeoutMs);
  const deadline = new AbortController();
  const timer = time.after(timeoutMs, () => deadline.abort());
  const jobSignal = firstAbort(hard, deadline.signal);
  const main = firstAbort(jobSignal, cancel);
  const system = (text: string) => (output.system ? output.system(text) : output.write(text, 'stdout'));
  const warn = (text: string) => system(`${YELLOW}WARNING: ${text}${RESET}\n`);

  const settings = new SettingsReader(job);
  const warnings: string[] = [];
  const scriptTimeoutMs = stageTimeoutMs(job, 'RUNNER_SCRIPT_TIMEOUT', warnings);
  const afterTimeoutMs = stageTimeoutMs(job, 'RUNNER_AFTER_SCRIPT_TIMEOUT', warnings);
  const afterScriptIgnoreErrors = settings.bool('AFTER_SCRIPT_IGNORE_ERRORS', true);
  const attempts = gitSettings(job, settings).getSourcesAttempts;
  for (const w of [...settings.warnings, ...warnings, ...resolveFeatureFlags(job).warnings]) warn(w);

  const timedOut = (): JobResult =>
    failed(
      'timedout',
      'job_execution_timeout',
      `execution took longer than ${Math.round(jobTimeoutMs / 1000)} seconds`,
    );
  /** Why `main` fired, if it did. */
  const interruption = (): JobResult | undefined => {
    if (hard.aborted || cancel.aborted) return failed('canceled', 'unknown_failure', 'canceled');
    if (deadline.signal.aborted) return timedOut();
    return undefined;
  };

  /** No stage ran a script yet: the next one starts the job's GITLAB_ENV. */
  let firstScript = true;
  const runStage = async (
    stage: StageName,
    status: JobStatus,
    signal: AbortSignal,
    attempt = 1,
  ): Promise<StageResult> => {
    // Stages with nothing to run cost no round trip to the instance.
    const known = stageHasWork(job, stage) ? executor.knownOutput?.(stage) : skippedStageOutput(job, stage);
    if (known !== undefined) {
      if (stage === 'cleanup_file_variables' && known === '') return { exitCode: 0 };
      return output.section(stage, async () => {
        system(`${CYAN}${stageHeading(stage)}${RESET}\n`);
        if (known) output.write(known, 'stdout');
        return { exitCode: 0 };
      });
    }
    const env = executor.stageEnvironment(stage);
    const script = buildStageScript(job, stage, {
      ...env,
      jobStatus: status,
      getSourcesAttempt: attempt,
      startsJob: firstScript,
      ...(opts.tlsCaChain ? { tlsCaChain: opts.tlsCaChain } : {}),
    });
    firstScript = false;
    return output.section(stage, () => {
      if (stage === 'get_sources' && attempt === 2) {
        system(`${CYAN}Deleting all tracked and untracked files due to source fetch failure${RESET}\n`);
      }
      system(`${CYAN}${stageHeading(stage)}${RESET}\n`);
      return executor.run(stage, script, output, signal);
    });
  };

  let result: JobResult | undefined;
  let prepared = false;
  let reachedSteps = false;
  const scriptTimeout = new AbortController();
  let scriptTimer: ReturnType<Time['after']> | undefined;
  let scriptsPrepared = false;
  try {
    await output.section('prepare_executor', () => executor.prepare(job, output, main));
    prepared = true;
    // Without RUNNER_SCRIPT_TIMEOUT the steps share `main` (a combined signal less per job).
    const scriptSignal = scriptTimeoutMs !== undefined ? firstAbort(main, scriptTimeout.signal) : main;
    for (const stage of ['prepare_script', 'get_sources', ...stepStages(job)] as StageName[]) {
      const isStep = stage.startsWith('step_');
      if (isStep && !reachedSteps && !result && opts.caches?.hasCaches) {
        // restore_cache: after the sources, before the first step (GitLab Runner's stage order).
        const caches = opts.caches;
        const fatal = await output.section('restore_cache', () => caches.restore(output, main));
        result = interruption() ?? (fatal ? failed('failed', 'script_failure', fatal) : undefined);
        if (result) break;
      }
      if (isStep && !reachedSteps && !result && opts.artifacts?.downloads) {
        // A download that fails skips the steps and after_script; uploads and cleanup still run.
        const artifacts = opts.artifacts;
        await output.section('download_artifacts', () => artifacts.download(output, main));
      }
      if (isStep && !reachedSteps) {
        reachedSteps = true;
        // RUNNER_SCRIPT_TIMEOUT covers the steps together, from the first one on.
        if (scriptTimeoutMs !== undefined) {
          if (scriptTimeoutMs > timeoutMs) {
            warn(
              `RUNNER_SCRIPT_TIMEOUT timeout: ${jobVariable(job, 'RUNNER_SCRIPT_TIMEOUT')} is longer than job timeout. Setting to job timeout`,
            );
          } else {
            scriptTimer = time.after(scriptTimeoutMs, () => scriptTimeout.abort());
          }
        }
      }
      // A step's `when` decides whether it runs after an earlier step failed (GitLab Runner's rule):
      // on_success (the default) only without a failure, on_failure only after one, always both.
      if (isStep && !shouldRun(stepWhen(job, stage), result !== undefined)) continue;
      let r = await runStage(stage, result ? 'failed' : 'running', isStep ? scriptSignal : main);
      // GET_SOURCES_ATTEMPTS: a failed get_sources is run again, the worktree cleared first.
      for (let attempt = 2; stage === 'get_sources' && r.exitCode !== 0 && attempt <= attempts; attempt++) {
        if (main.aborted) break;
        warn('Retrying...');
        r = await runStage(stage, 'running', main, attempt);
      }
      const interrupted = interruption();
      if (interrupted) {
        if (deadline.signal.aborted && !hard.aborted && !cancel.aborted) {
          warn(`${stage} could not run to completion because the timeout was exceeded. ${TIMEOUT_DOCS}`);
        }
        result = interrupted;
        break;
      }
      if (isStep && scriptTimeout.signal.aborted) {
        warn(`${stage} could not run to completion because the timeout was exceeded. ${TIMEOUT_DOCS}`);
        result ??= failed('timedout', 'job_execution_timeout', 'script timeout: context deadline exceeded');
        // The rest of the steps share the expired script timeout: none of them runs.
        break;
      }
      if (r.exitCode !== 0 && !result) {
        const code = r.exitCode ?? signalExitCode(r.signal);
        result = failed('failed', 'script_failure', `exit code ${code}`, code);
        // Sources or preparation failed: no step runs (after_script neither, as it was not reached).
        if (!isStep) break;
      }
      if (stage === 'prepare_script' && r.exitCode === 0) scriptsPrepared = true;
    }
  } catch (e) {
    result = interruption() ?? fromError(e);
  }
  scriptTimer?.cancel();

  try {
    // after_script runs within the job deadline, as everything else (GitLab Runner derives its
    // context from the job's): a job that hit its deadline has no time left for it.
    if (reachedSteps && hasAfterScript(job) && !jobSignal.aborted) {
      const limit = withTimeout(jobSignal, afterTimeoutMs ?? opts.afterScriptTimeoutMs ?? 300_000, time);
      const status = result?.status ?? 'success';
      const r = await runStage('after_script', status, limit.signal)
        .catch((e: unknown) => {
          warn(`after_script failed: ${(e as Error).message}`);
          return undefined;
        })
        .finally(() => limit.cancel());
      if (r?.aborted) {
        warn(`after_script could not run to completion because the timeout was exceeded. ${TIMEOUT_DOCS}`);
      } else if (r && r.exitCode !== 0) {
        const code = r.exitCode ?? signalExitCode(r.signal);
        if (afterScriptIgnoreErrors) {
          warn(`after_script failed, but job will continue unaffected: exit code ${code}`);
        } else if (!result) {
          result = failed('failed', 'script_failure', `exit code ${code}`, code);
        }
      }
    }
    result ??= { state: 'success', status: 'success', message: 'Job succeeded' };
    // archive_cache / archive_cache_on_failure: after after_script, unless the job was stopped.
    if (
      scriptsPrepared &&
      opts.caches?.archives(result.state === 'success') &&
      !hard.aborted &&
      !['canceled', 'timedout'].includes(result.status)
    ) {
      const success = result.state === 'success';
      const caches = opts.caches;
      const fatal = await output.section(success ? 'archive_cache' : 'archive_cache_on_failure', () =>
        caches.archive(success, output, hard),
      );
      if (fatal && success) result = failed('failed', 'script_failure', fatal);
    }
    if (prepared && opts.artifacts && !hard.aborted)
      result = await uploadArtifacts(opts.artifacts, result, output, hard);
    if (prepared) {
      // Its time limit (a timer) only where the stage has something to run.
      const limit = stageHasWork(job, 'cleanup_file_variables')
        ? withTimeout(hard, opts.cleanupTimeoutMs ?? 30_000, time)
        : { signal: hard, cancel: () => undefined };
      await runStage('cleanup_file_variables', result.status, limit.signal)
        .catch(() => undefined)
        .finally(() => limit.cancel());
    }
  } finally {
    timer.cancel();
    await executor.cleanup();
  }

  output.write(
    result.state === 'success'
      ? `${GREEN}${result.message}${RESET}\n`
      : `${RED}ERROR: Job failed${result.failureReason === 'runner_system_failure' ? ' (system failure)' : ''}: ${result.message}${RESET}\n`,
    'stdout',
  );
  return result;
}

/** The upload stage for how the job ended; a failed upload fails a job that had succeeded. */
async function uploadArtifacts(
  artifacts: ArtifactStages,
  result: JobResult,
  output: JobOutput,
  signal: AbortSignal,
): Promise<JobResult> {
  const succeeded = result.state === 'success';
  const stage = artifacts.uploadStage(succeeded);
  if (!stage) return result;
  const failure = await output
    .section(stage, () => artifacts.upload(succeeded, output, signal))
    .catch((e: unknown) => (e instanceof Error ? e.message : String(e)));
  return failure && succeeded ? failed('failed', 'script_failure', failure, 1) : result;
}

const TIMEOUT_DOCS =
  'For more control over job and script timeouts see: ' +
  'https://docs.gitlab.com/ci/runners/configure_runners/#set-script-and-after_script-timeouts';

function failed(
  status: JobResult['status'],
  failureReason: FailureReason,
  message: string,
  exitCode?: number,
): JobResult {
  return { state: 'failed', status, failureReason, message, ...(exitCode !== undefined ? { exitCode } : {}) };
}

/** A `BuildError` keeps its reason; anything else means the runner or the instance failed. */
function fromError(e: unknown): JobResult {
  if (isBuildError(e)) return failed('failed', e.failureReason, e.message, e.exitCode);
  return failed('failed', 'runner_system_failure', e instanceof Error ? e.message : String(e));
}

/** The `when` of the payload step behind a `step_<name>` stage; on_success when empty. */
function stepWhen(job: JobPayload, stage: StageName): string {
  const step = job.steps.find((s) => `step_${s.name}` === stage);
  return step?.when || 'on_success';
}

function shouldRun(when: string, failedBefore: boolean): boolean {
  if (when === 'always') return true;
  if (when === 'on_failure') return failedBefore;
  return !failedBefore;
}
