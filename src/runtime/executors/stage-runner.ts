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
import type { ArtifactStages } from './artifact-stages.js';
import { isBuildError, type Executor, type JobOutput, type StageResult } from './executor.js';
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
  /** The job deadline. @default runner_info.timeout seconds (≤ 0 means 7200 s) */
  timeoutMs?: number;
  /** Limit of `after_script`, counted from its start. @default 300000 (5 min, as GitLab) */
  afterScriptTimeoutMs?: number;
  /** Limit of `cleanup_file_variables`. @default 30000 */
  cleanupTimeoutMs?: number;
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
const RESET = '\x1b[0;m';

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
  const hard = opts.signal ?? new AbortController().signal;
  const cancel = opts.cancel ?? new AbortController().signal;
  const timeoutMs = opts.timeoutMs ?? jobTimeoutSeconds(job) * 1000;
  const deadline = new AbortController();
  const timer = (opts.time ?? systemTime).after(timeoutMs, () => deadline.abort());
  const main = AbortSignal.any([hard, cancel, deadline.signal]);

  /** Why `main` fired, if it did. */
  const interruption = (): JobResult | undefined => {
    if (hard.aborted || cancel.aborted) return failed('canceled', 'unknown_failure', 'canceled');
    if (deadline.signal.aborted) {
      return failed(
        'timedout',
        'job_execution_timeout',
        `execution took longer than ${Math.round(timeoutMs / 1000)} seconds`,
      );
    }
    return undefined;
  };

  const runStage = async (stage: StageName, status: JobStatus, signal: AbortSignal): Promise<StageResult> => {
    // Stages with nothing to run cost no round trip to the instance.
    const known = stageHasWork(job, stage) ? executor.knownOutput?.(stage) : skippedStageOutput(job, stage);
    if (known !== undefined) {
      if (stage === 'cleanup_file_variables' && known === '') return { exitCode: 0 };
      return output.section(stage, async () => {
        if (known) output.write(known, 'stdout');
        return { exitCode: 0 };
      });
    }
    const env = executor.stageEnvironment(stage);
    const script = buildStageScript(job, stage, { ...env, jobStatus: status });
    return output.section(stage, () => executor.run(stage, script, output, signal));
  };

  let result: JobResult | undefined;
  let prepared = false;
  let reachedSteps = false;
  let scriptsPrepared = false;
  try {
    await output.section('prepare_executor', () => executor.prepare(job, output, main));
    prepared = true;
    for (const stage of ['prepare_script', 'get_sources', ...stepStages(job)] as StageName[]) {
      if (stage.startsWith('step_') && !reachedSteps && !result && opts.caches?.hasCaches) {
        // restore_cache: after the sources, before the first step (GitLab Runner's stage order).
        const fatal = await output.section('restore_cache', () => opts.caches!.restore(output, main));
        result = interruption() ?? (fatal ? failed('failed', 'script_failure', fatal) : undefined);
        if (result) break;
      }
      if (stage.startsWith('step_') && !reachedSteps && !result && opts.artifacts?.downloads) {
        // A download that fails skips the steps and after_script; uploads and cleanup still run.
        const artifacts = opts.artifacts;
        await output.section('download_artifacts', () => artifacts.download(output, main));
      }
      if (stage.startsWith('step_')) reachedSteps = true;
      // A step's `when` decides whether it runs after an earlier step failed (GitLab Runner's rule):
      // on_success (the default) only without a failure, on_failure only after one, always both.
      if (stage.startsWith('step_') && !shouldRun(stepWhen(job, stage), result !== undefined)) continue;
      const r = await runStage(stage, result ? 'failed' : 'running', main);
      const interrupted = interruption();
      if (interrupted) {
        result = interrupted;
        break;
      }
      if (r.exitCode !== 0 && !result) {
        const code = r.exitCode ?? signalExitCode(r.signal);
        result = failed('failed', 'script_failure', `exit code ${code}`, code);
        // Sources or preparation failed: no step runs (after_script neither, as it was not reached).
        if (!stage.startsWith('step_')) break;
      }
      if (stage === 'prepare_script' && r.exitCode === 0) scriptsPrepared = true;
    }
  } catch (e) {
    result = interruption() ?? fromError(e);
  }
  result ??= { state: 'success', status: 'success', message: 'Job succeeded' };
  timer.cancel();

  try {
    if (reachedSteps && hasAfterScript(job) && !hard.aborted) {
      const afterSignal = AbortSignal.any([hard, AbortSignal.timeout(opts.afterScriptTimeoutMs ?? 300_000)]);
      const r = await runStage('after_script', result.status, afterSignal).catch((e: unknown) => {
        output.write(`${RED}WARNING: after_script failed: ${(e as Error).message}${RESET}\n`, 'stdout');
        return undefined;
      });
      if (r && r.exitCode !== 0 && !r.aborted) {
        output.write(
          `${RED}WARNING: after_script failed with exit code ${r.exitCode}, ignored${RESET}\n`,
          'stdout',
        );
      } else if (r?.aborted) {
        output.write(`${RED}WARNING: after_script timed out or was stopped${RESET}\n`, 'stdout');
      }
    }
    // archive_cache / archive_cache_on_failure: after after_script, unless the job was stopped.
    if (
      scriptsPrepared &&
      opts.caches?.archives(result.state === 'success') &&
      !hard.aborted &&
      !['canceled', 'timedout'].includes(result.status)
    ) {
      const success = result.state === 'success';
      const fatal = await output.section(success ? 'archive_cache' : 'archive_cache_on_failure', () =>
        opts.caches!.archive(success, output, hard),
      );
      if (fatal && success) result = failed('failed', 'script_failure', fatal);
    }
    if (prepared && opts.artifacts && !hard.aborted)
      result = await uploadArtifacts(opts.artifacts, result, output, hard);
    if (prepared) {
      const cleanupSignal = AbortSignal.any([hard, AbortSignal.timeout(opts.cleanupTimeoutMs ?? 30_000)]);
      await runStage('cleanup_file_variables', result.status, cleanupSignal).catch(() => undefined);
    }
  } finally {
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
