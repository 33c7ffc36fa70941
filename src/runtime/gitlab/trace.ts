/**
 * A running job's side of the GitLab protocol (§3, §4): the log pipeline (mask → limit → buffer),
 * the loop that PATCHes it every interval with keep-alive PUTs, cancellation signals, section and
 * heading helpers, and the final update with its retries. One JobTrace per job.
 *
 * Usage: `await trace.start()` (the `running` PUT), then `write()` output, then `await finish()`.
 */
import { silentLogger, type Logger } from '../../util/logger.js';
import { systemTime, type TimerHandle, type Time } from '../../util/time.js';
import type { GitlabClient, JobRef, JobUpdate, PatchTraceResult } from './client.js';
import type { JobPayload } from './job.js';
import { TraceLog, type TraceStream } from './trace-log.js';
import { featureFlagOn } from '../script/feature-flags.js';
import { sectionEndMarker, sectionStartMarker, style, type SectionOptions } from './trace-format.js';

/** `graceful`: stop the user script, run after_script (`Job-Status: canceling`). `abort`: stop all now. */
export type CancelMode = 'graceful' | 'abort';

/** The calls JobTrace makes; `GitlabClient` satisfies it. */
export type TraceClient = Pick<GitlabClient, 'updateJob' | 'patchTrace'>;

export interface JobTraceOptions {
  client: TraceClient;
  job: JobRef & Pick<JobPayload, 'variables'>;
  /** Called at most once per mode (graceful may be followed by abort). Must not throw. */
  onCancel?: (mode: CancelMode) => void;
  /** Send intervals, keep-alives and section marker timestamps. @default systemTime */
  time?: Time;
  /** Send interval until GitLab names one. @default 3000 */
  intervalMs?: number;
  /**
   * The job's first output is PATCHed this long after it arrives (what comes meanwhile goes
   * along), instead of waiting a whole interval; later PATCHes keep the interval. @default 150
   */
  firstOutputDelayMs?: number;
  /** A keep-alive PUT after this long without anything sent (`forceSendInterval`). @default 30_000 */
  keepAliveMs?: number;
  /** @default 1 MiB */
  maxPatchBytes?: number;
  /** @default 4 MiB */
  outputLimit?: number;
  /** Per-line timestamps. @default the job's `FF_TIMESTAMPS` (GitLab Runner's default: on) */
  timestamps?: boolean;
  /** Final update attempts after errors (`job_status_final_update_retry_limit`). @default 10 */
  finalUpdateRetryLimit?: number;
  /** Backoff between final update attempts. @default { minMs: 1000, maxMs: 3_600_000 } */
  finalBackoff?: { minMs: number; maxMs: number };
  /** Cap on 202 replies to the final PUT before it counts as an error. @default 100 */
  maxAcceptedRetries?: number;
  log?: Logger;
  /**
   * Shutdown: aborts in-flight calls and waits. The send loop stops, and `finish()` resolves
   * `gave-up` instead of retrying for up to an hour; `start()` rejects with the abort reason.
   */
  signal?: AbortSignal;
}

/** The job's end as the final update reports it. */
export interface FinalResult {
  state: 'success' | 'failed';
  /** Only with `failed`; mapped to what GitLab accepts. @default 'script_failure' */
  failureReason?: string;
  /** The script's exit code; sent when non-zero. */
  exitCode?: number;
}

/** `run`: go ahead. `drop`: GitLab no longer wants the job; do nothing. `cancel`: fail it as canceled. */
export type StartOutcome = 'run' | 'drop' | 'cancel';

export interface FinishOutcome {
  /** `ok`: GitLab took the final state. `aborted`: the job is gone (403/404). `gave-up`: retries exhausted. */
  kind: 'ok' | 'aborted' | 'gave-up';
  /** Final update sequences tried. */
  attempts: number;
}

const MAX_INTERVAL_MS = 15 * 60_000;
const MAX_RANGE_RECOVERIES = 10;

export class JobTrace {
  readonly log: TraceLog;
  private readonly time: Time;
  private readonly logger: Logger;
  private readonly defaultIntervalMs: number;
  private intervalMs: number;
  private sentOffset = 0;
  /** Last time GitLab accepted something from us (PATCH or PUT): keep-alives wait 30 s from it. */
  private lastSentAt: number;
  private loopTimer: TimerHandle | undefined;
  private inFlight: Promise<void> = Promise.resolve();
  /** A loop step is running (its PATCH or PUT in flight). */
  private ticking = false;
  /** The early PATCH of the first output was scheduled (or is no longer needed). */
  private firstOutputArmed = false;
  private running = false;
  /** After a 404 or abort from PATCH: nothing more goes to the trace endpoint. */
  private traceStopped = false;
  private finished: Promise<FinishOutcome> | undefined;
  private readonly cancelsFired = new Set<CancelMode>();

  constructor(private readonly opts: JobTraceOptions) {
    const secrets = opts.job.variables.filter((v) => v.masked).map((v) => v.value);
    this.time = opts.time ?? systemTime;
    const stamped = opts.timestamps ?? featureFlagOn(opts.job, 'FF_TIMESTAMPS');
    this.log = new TraceLog({
      secrets: [...secrets, opts.job.token],
      tokenPrefixes: opts.job.features?.token_mask_prefixes,
      outputLimit: opts.outputLimit,
      ...(stamped ? { timestamps: { now: () => this.time.now() } } : {}),
    });
    this.logger = opts.log ?? silentLogger;
    this.defaultIntervalMs = opts.intervalMs ?? 3000;
    this.intervalMs = this.defaultIntervalMs;
    this.lastSentAt = this.time.now().getTime();
  }

  /** The send interval in force (GitLab's `X-GitLab-Trace-Update-Interval` once it sent one). */
  get currentIntervalMs(): number {
    return this.intervalMs;
  }

  /** Bytes GitLab has acknowledged. */
  get acknowledged(): number {
    return this.sentOffset;
  }

  /** The strongest cancel GitLab asked for so far. */
  get cancelRequested(): CancelMode | undefined {
    return this.cancelsFired.has('abort')
      ? 'abort'
      : this.cancelsFired.has('graceful')
        ? 'graceful'
        : undefined;
  }

  /**
   * The `running` PUT sent right after the job arrives (§3 step 1), then starts the send loop.
   * A failed call still runs the job, as GitLab Runner does; keep-alives will retry.
   */
  async start(): Promise<StartOutcome> {
    const r = await this.opts.client.updateJob(this.opts.job, { state: 'running' }, this.opts.signal);
    this.applyInterval(r.intervalMs);
    if (r.kind === 'abort' || r.kind === 'not-found') return 'drop';
    this.lastSentAt = this.time.now().getTime();
    this.running = true;
    this.schedule();
    if (r.kind === 'canceling') return 'cancel';
    return 'run';
  }

  /** Job output. Masked; may be held back a little until the stream's next write or `flush()`. */
  write(chunk: Uint8Array | string, stream: TraceStream = 'stdout'): void {
    if (this.finished) return;
    this.log.write(chunk, stream);
    if (!this.firstOutputArmed) this.armFirstOutput();
  }

  /** The job's first output: PATCH it (and whatever joins it shortly) soon, not an interval later. */
  private armFirstOutput(): void {
    if (!this.running || this.ticking) return;
    this.firstOutputArmed = true;
    if (this.sentOffset > 0) return;
    this.loopTimer?.cancel();
    this.loopTimer = undefined;
    this.schedule(this.opts.firstOutputDelayMs ?? 150);
  }

  /** Emits held-back output; call when a stage's streams end. */
  flush(): void {
    this.log.flush();
  }

  /** runfleet's own text, after all output written before it. */
  writeSystem(text: string): void {
    if (this.finished) return;
    this.log.writeSystem(text);
  }

  /** Writes `section_start` (§4), only if the job's `features.trace_sections` is on. */
  sectionStart(name: string, options?: SectionOptions): void {
    if (!this.opts.job.features?.trace_sections) return;
    this.writeSystem((this.log.atLineStart ? '' : '\n') + sectionStartMarker(this.unixNow(), name, options));
  }

  sectionEnd(name: string): void {
    if (!this.opts.job.features?.trace_sections) return;
    this.writeSystem((this.log.atLineStart ? '' : '\n') + sectionEndMarker(this.unixNow(), name));
  }

  /** Bold cyan line, e.g. "Preparing environment". */
  heading(text: string): void {
    this.writeSystem(style.heading(text));
  }

  /** Bold green `$ cmd` line. */
  command(cmd: string): void {
    this.writeSystem(style.command(cmd));
  }

  warning(text: string): void {
    this.writeSystem(style.warning(text));
  }

  error(text: string): void {
    this.writeSystem(style.error(text));
  }

  /** The closing line: "Job succeeded", or "ERROR: Job failed: <reason>". Write before `finish()`. */
  jobResult(outcome: { state: 'success' } | { state: 'failed'; message: string }): void {
    this.writeSystem(outcome.state === 'success' ? style.jobSucceeded() : style.jobFailed(outcome.message));
  }

  /**
   * Stops the send loop without a final update (the job was dropped). `finish()` is the normal end.
   */
  async stop(): Promise<void> {
    this.running = false;
    this.loopTimer?.cancel();
    await this.inFlight;
  }

  /**
   * The final update (§3): stop the loop, PATCH until GitLab has every byte (recovering from
   * 416), then PUT the final state with the checksum and size, honouring 202 (wait, resend) and
   * 412 (re-send the trace from 0). Errors restart the sequence with backoff, up to the retry
   * limit. Idempotent: later calls return the first call's outcome. Never throws.
   */
  finish(result: FinalResult): Promise<FinishOutcome> {
    this.finished ??= this.finalUpdate(result).catch((e: unknown) => {
      if (!this.opts.signal?.aborted) throw e;
      this.logger.warn('Final job update interrupted by shutdown', { jobId: this.opts.job.id });
      return { kind: 'gave-up' as const, attempts: 0 };
    });
    return this.finished;
  }

  private async finalUpdate(result: FinalResult): Promise<FinishOutcome> {
    await this.stop();
    this.log.flush();
    this.intervalMs = this.defaultIntervalMs;
    const limit = this.opts.finalUpdateRetryLimit ?? 10;
    const maxAccepted = this.opts.maxAcceptedRetries ?? 100;
    let accepted = 0;
    let attempts = 0;
    for (let errors = 0; ;) {
      attempts++;
      const failed = await this.finalAttempt(result, () => ++accepted > maxAccepted);
      if (failed === 'ok' || failed === 'aborted') return { kind: failed, attempts };
      errors++;
      if (errors > limit) {
        this.logger.warn('Final job update gave up', { jobId: this.opts.job.id, attempts });
        return { kind: 'gave-up', attempts };
      }
      if (failed === 'error') await this.time.sleep(this.finalBackoffMs(errors), this.opts.signal);
    }
  }

  /** One final-update sequence. `reset` (412) restarts at once; `error` restarts after backoff. */
  private async finalAttempt(
    result: FinalResult,
    tooManyAccepted: () => boolean,
  ): Promise<'ok' | 'aborted' | 'error' | 'reset'> {
    if (!(await this.patchAll())) return 'error';
    const update: JobUpdate = {
      state: result.state,
      failureReason: result.state === 'failed' ? (result.failureReason ?? 'script_failure') : undefined,
      exitCode: result.exitCode,
      output: { checksum: this.log.checksum(), bytesize: this.log.length },
    };
    for (;;) {
      const r = await this.opts.client.updateJob(this.opts.job, update, this.opts.signal);
      this.applyInterval(r.intervalMs);
      // Rails answers the final PUT with the job's new status (`Job-Status: failed`, or `canceled`
      // after a graceful cancel), which reads as "abort"; a 200 still means GitLab took it.
      if (r.status === 200) return 'ok';
      switch (r.kind) {
        case 'ok':
        case 'canceling':
          return 'ok';
        case 'abort':
        case 'not-found':
          return 'aborted';
        case 'accepted-retry':
          // GitLab is still moving the trace out of live chunks: same PUT after its interval.
          if (tooManyAccepted()) return 'error';
          await this.time.sleep(r.intervalMs ?? this.intervalMs, this.opts.signal);
          continue;
        case 'reset-trace':
          this.sentOffset = 0;
          this.traceStopped = false;
          return 'reset';
        case 'retry':
          return 'error';
      }
    }
  }

  /** PATCHes until everything is acknowledged; false on an error worth a retry. */
  private async patchAll(): Promise<boolean> {
    let recoveries = 0;
    while (!this.traceStopped && this.sentOffset < this.log.length) {
      const r = await this.patchOnce();
      if (r.kind === 'accepted' || r.kind === 'canceling' || r.kind === 'abort' || r.kind === 'not-found')
        continue;
      if (r.kind === 'retry') return false;
      if (++recoveries > MAX_RANGE_RECOVERIES) return false;
      await this.time.sleep(this.intervalMs, this.opts.signal);
    }
    return true;
  }

  /** One PATCH of up to maxPatchBytes unsent bytes, with its effect on offset and cancellation. */
  private async patchOnce(): Promise<PatchTraceResult> {
    const max = this.opts.maxPatchBytes ?? 1024 * 1024;
    const start = this.sentOffset;
    const bytes = this.log.slice(start, start + max);
    const r = await this.opts.client.patchTrace(this.opts.job, bytes, start, this.opts.signal);
    this.applyInterval(r.intervalMs);
    if (r.cancelRequested) this.cancel('graceful');
    switch (r.kind) {
      case 'accepted':
      case 'canceling':
        this.sentOffset = r.end;
        // Like GitLab Runner's sentTime: a PATCH GitLab took (or answered 416) is a sign of life, so
        // a job whose log keeps flowing needs no keep-alive PUT (§3 step 2, `touchJob`).
        this.lastSentAt = this.time.now().getTime();
        break;
      case 'range-mismatch':
        this.lastSentAt = this.time.now().getTime();
        this.logger.debug('Trace range mismatch', {
          jobId: this.opts.job.id,
          from: start,
          to: r.serverLength,
        });
        this.sentOffset = Math.min(r.serverLength, this.log.length);
        break;
      case 'abort':
        this.traceStopped = true;
        this.cancel('abort');
        break;
      case 'not-found':
        this.traceStopped = true;
        break;
      case 'retry':
        break;
    }
    return r;
  }

  private schedule(delayMs = this.intervalMs): void {
    if (!this.running) return;
    this.loopTimer = this.time.after(delayMs, () => {
      this.ticking = true;
      this.inFlight = this.tick()
        .catch((e: unknown) => {
          this.logger.warn('Trace update failed', { jobId: this.opts.job.id, err: (e as Error).message });
        })
        .finally(() => (this.ticking = false));
      void this.inFlight.then(() => this.schedule());
    });
  }

  /** One loop step: a PATCH of unsent bytes, then a keep-alive PUT if due (`touchJob`). */
  private async tick(): Promise<void> {
    if (!this.running) return;
    let healthy = true;
    if (!this.traceStopped && this.sentOffset < this.log.length) {
      const r = await this.patchOnce();
      healthy = r.kind === 'accepted' || r.kind === 'canceling';
    }
    if (!healthy || !this.running) return;
    if (this.time.now().getTime() - this.lastSentAt < (this.opts.keepAliveMs ?? 30_000)) return;
    const r = await this.opts.client.updateJob(this.opts.job, {
      state: 'running',
      output: { checksum: this.log.checksum(), bytesize: this.log.length },
    });
    this.applyInterval(r.intervalMs);
    if (r.kind === 'ok' || r.kind === 'canceling') this.lastSentAt = this.time.now().getTime();
    if (r.cancelRequested) this.cancel('graceful');
    if (r.kind === 'abort' || r.kind === 'not-found') this.cancel('abort');
  }

  private cancel(mode: CancelMode): void {
    if (this.cancelsFired.has(mode) || this.cancelsFired.has('abort') || this.finished) return;
    this.cancelsFired.add(mode);
    // The job is gone on GitLab's side: nothing more to send until the final update tries once.
    if (mode === 'abort') this.running = false;
    this.logger.info('GitLab canceled the job', { jobId: this.opts.job.id, mode });
    try {
      this.opts.onCancel?.(mode);
    } catch (e) {
      this.logger.warn('onCancel threw', { jobId: this.opts.job.id, err: (e as Error).message });
    }
  }

  private applyInterval(ms: number | undefined): void {
    if (ms !== undefined && ms > 0) this.intervalMs = Math.min(ms, MAX_INTERVAL_MS);
  }

  private finalBackoffMs(errors: number): number {
    const { minMs, maxMs } = this.opts.finalBackoff ?? { minMs: 1000, maxMs: 3_600_000 };
    return Math.min(maxMs, minMs * 2 ** (errors - 1));
  }

  private unixNow(): number {
    return Math.floor(this.time.now().getTime() / 1000);
  }
}
