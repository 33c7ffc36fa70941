/**
 * The executor seam, in gitlab-runner's shape (`Prepare / Run / Cleanup`): an executor knows where
 * each stage of a job runs (the instance host, a container) and how to run a stage script there.
 * `runStages` (stage-runner.ts) drives the stages; the script builder (../script) writes them.
 */
import { FleetError } from '../../errors.js';
import type { FailureReason, JobPayload, JobVariable } from '../gitlab/job.js';
import type { JobLayout } from '../script/layout.js';
import type { StageName } from '../script/stage-script.js';

/**
 * Where a job's log goes. The runtime writes script output and its own notices here; the lead's
 * trace writer adapts it to GitLab's trace (masking, section markers, limits).
 */
export interface JobOutput {
  /** Appends raw bytes of the job log, in order. */
  write(chunk: Buffer | string, stream: 'stdout' | 'stderr'): void;
  /** Runs `fn` as the named section of the log (`section_start` … `section_end`). */
  section<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /** runfleet's own lines (headings, warnings); `write` to stdout where absent. */
  system?(text: string): void;
}

/** What a stage script needs to know about where it runs. */
export interface StageEnvironment {
  layout: JobLayout;
  /** Slot of the job on its instance (`CI_CONCURRENT_ID`). */
  concurrentId: number;
  /** Executor-specific runner variables, e.g. `CI_JOB_IMAGE`. */
  extra: JobVariable[];
  /** The environment is thrown away after the job (a container). */
  disposable: boolean;
}

export interface StageResult {
  /** The script's exit code; null if a signal ended it. */
  exitCode: number | null;
  /** The signal that ended the script, when `exitCode` is null and it is known. */
  signal?: string;
  /** True when `signal` aborted the stage and the executor killed it. */
  aborted?: boolean;
}

export interface Executor {
  readonly name: 'instance' | 'docker';

  /**
   * Gets the environment ready for `job` (docker: reaches the daemon, resolves the image by its
   * pull policy). Throws `BuildError` for job-caused failures (`image_pull_failure`), any other
   * error for instance failures. Called once, before any other method.
   */
  prepare(job: JobPayload, output: JobOutput, signal: AbortSignal): Promise<void>;

  /** Paths and variables valid where `stage` runs. Valid after `prepare`. */
  stageEnvironment(stage: StageName): StageEnvironment;

  /**
   * Runs one stage script to its end and resolves with its exit code; output goes to `output`.
   * When `signal` aborts, kills everything the stage started and resolves with `aborted: true`.
   * Rejects when the instance fails (connection lost, daemon gone).
   */
  run(stage: StageName, script: string, output: JobOutput, signal: AbortSignal): Promise<StageResult>;

  /**
   * The whole output of `stage` when the executor knows it without running anything (the
   * instance executor's prepare_script: "Running on <host>"); undefined runs the stage.
   */
  knownOutput?(stage: StageName): string | undefined;

  /** Removes what the job left (containers, its shell). Idempotent; never throws. */
  cleanup(): Promise<void>;
}

/**
 * A failure the job itself caused, with the reason GitLab should see (gitlab-runner's
 * `BuildError`). Errors that are not `BuildError`s are reported as `runner_system_failure`.
 */
export class BuildError extends FleetError {
  readonly failureReason: FailureReason;
  readonly exitCode: number | undefined;

  constructor(
    failureReason: FailureReason,
    message: string,
    opts: { exitCode?: number; hint?: string; cause?: unknown } = {},
  ) {
    super('JOB_FAILED', message, { hint: opts.hint, cause: opts.cause });
    this.failureReason = failureReason;
    this.exitCode = opts.exitCode;
  }
}

export function isBuildError(e: unknown): e is BuildError {
  return e instanceof BuildError;
}
