/**
 * The job loop of one fleet: asks GitLab for jobs and runs them on the fleet's instances, through
 * the slot scheduler that is also the daemon's source of demand.
 *
 * Preemptive mode (GitLab's default when idle_count > 0): a slot is reserved before a job is
 * requested, so a job starts at once on an idle instance. Otherwise the job is requested first and
 * waits as pending demand while the daemon scales up, bounded by the fleet's total slots so the
 * runner never takes more jobs than the fleet could ever run.
 *
 * Request concurrency is adaptive (GitLab Runner's FF_USE_ADAPTIVE_REQUEST_CONCURRENCY, see
 * request-concurrency.ts): `request_concurrency` loops, of which ceil(limit) may hold a job request
 * open while requests return jobs; the limit grows 10 % per job, shrinks 5 % per empty answer and
 * halves when GitLab pushes back (429, 5xx). Once a request returns none, only the first loop asks,
 * once per check interval, until a request returns a job again: GitLab Runner's empty queue costs
 * one request per `check_interval` too (its feeder), however high the limit is. Free slots bound it
 * as well: a loop without a slot to run a job in does not ask.
 */
import { setMaxListeners } from 'node:events';
import { isFleetError } from '../errors.js';
import { DEFAULT_CHECK_INTERVAL, type Fleet } from '../model/fleet.js';
import { groupRefFor } from '../model/group.js';
import { policyAt } from '../plan/policy.js';
import type { ProviderRegistry } from '../providers/registry.js';
import type { TimerHandle, Time } from '../util/time.js';
import type { Logger } from '../util/logger.js';
import { firstAbort } from '../util/abort.js';
import type { SshConnectorPool } from './connectors/ssh-connector.js';
import type { GitlabClient } from './gitlab/client.js';
import type { JobPayload } from './gitlab/job.js';
import { failRefusedJob, unsupportedJobReason } from './gitlab/refuse.js';
import { shortToken } from './gitlab/runner-info.js';
import type { CacheStores } from './cache/cache-stores.js';
import { runAssignedJob, startJob, type JobOutcome } from './assigned-job.js';
import type { Reservation, SlotScheduler } from './slots/index.js';
import type { JobResult } from './executors/stage-runner.js';
import { jobTimeoutSeconds } from './script/layout.js';
import { AdaptiveConcurrency } from './request-concurrency.js';
import { parseDuration } from '../util/duration.js';

function failedBeforeRun(
  status: 'canceled' | 'timedout',
  failureReason: 'unknown_failure' | 'job_execution_timeout',
  message: string,
): JobResult {
  return { state: 'failed', status, failureReason, message };
}

/** Rotate a runner token this far into its remaining lifetime (GitLab Runner's 0.75). */
const TOKEN_RESET_INTERVAL_FACTOR = 0.75;

/** After this many unhealthy requests in a row the fleet's runner pauses (GitLab: 3, 60 min). */
const UNHEALTHY_LIMIT = 3;
const UNHEALTHY_PAUSE_MS = 60_000;

export interface JobIntakeDeps {
  scheduler: Pick<SlotScheduler, 'reserve' | 'unreserve' | 'acquire' | 'release' | 'demand' | 'subscribe'>;
  providers: ProviderRegistry;
  ssh: SshConnectorPool;
  client: GitlabClient;
  token: string;
  systemId: string;
  version: string;
  time: Time;
  logger: Logger;
  /**
   * Overrides every fleet's `gitlab.check_interval` (demos and tests, whose GitLab protocol runs in
   * milliseconds). @default the fleet's `gitlab.check_interval`
   */
  checkIntervalMs?: number;
  /** Where jobs' caches are kept (runtime/cache). */
  caches?: CacheStores;
  /** Sees every chunk of job output before masking (benchmarks); must not log it. */
  onOutput?: (fleet: string, jobId: number, chunk: Buffer | string) => void;
  /**
   * Keeps a rotated runner token (fleet-runners.ts persists it). Called with the new token, a
   * secret: never log it. Rejections are logged and leave the token in memory only.
   */
  onTokenRotated?: (token: string, expiresAt: string | undefined) => Promise<void>;
  /** GitLab's CA chain (PEM) for `CI_SERVER_TLS_CA_FILE`, when the manager has one. */
  tlsCaChain?: string;
  /** Called when a job ends, for metrics and the jobs table. */
  onJobDone?: (fleet: string, job: JobPayload, outcome: JobOutcome) => void;
}

export class JobIntake {
  private fleet: Fleet;
  private readonly polling = new AbortController();
  /** Hard stop of running jobs (shutdown past its grace period). */
  private readonly hard = new AbortController();
  /**
   * Each running job's own hard stop, aborted with `hard`: a job listens on its own signal, so
   * adding and removing its listeners costs the same with 1,000 jobs running as with one (an
   * EventTarget looks through its listeners on every add and remove).
   */
  private readonly jobStops = new Set<AbortController>();
  private readonly jobs = new Set<Promise<void>>();
  private loop: Promise<void> | undefined;
  /** Jobs received whose `running` PUT is in flight: not yet pending in the scheduler. */
  private starting = 0;
  /** Job requests open now. */
  private requesting = 0;
  /** The adaptive limit on open job requests (1 … request_concurrency). */
  private readonly adaptive = new AdaptiveConcurrency(() => this.fleet.gitlab?.request_concurrency ?? 1);
  /** The last job request that ended returned a job: more than the first loop may ask. */
  private busy = false;
  /** Loops parked until `requestConcurrency` grows past their index. */
  private readonly parked = new Set<() => void>();
  /** The fleet's check_interval, parsed once per written value. */
  private intervalFor = { written: '', ms: 0 };
  /** The next runner token rotation, while the token has an expiry. */
  private rotation: TimerHandle | undefined;

  constructor(
    fleet: Fleet,
    private readonly deps: JobIntakeDeps,
  ) {
    this.fleet = fleet;
    // Every open job request (up to request_concurrency) listens on the polling signal: more than
    // Node's warning threshold of 10 is expected. Each listener is removed when its request ends.
    setMaxListeners(0, this.polling.signal);
    this.hard.signal.addEventListener('abort', () => {
      for (const stop of this.jobStops) stop.abort();
    });
  }

  /** Verifies the runner token, then polls in the background. Rejects when GitLab refuses the token. */
  async start(): Promise<void> {
    const verified = await this.deps.client.verify(this.polling.signal);
    this.scheduleRotation(verified.tokenExpiresAt ?? undefined);
    this.deps.logger.info('runner verified; requesting jobs', { gitlab: this.deps.client.baseUrl });
    // request_concurrency loops, each with at most one open request (GitLab Runner's model).
    const loops = Math.max(1, this.fleet.gitlab?.request_concurrency ?? 1);
    this.loop = Promise.all(
      Array.from({ length: loops }, (_, index) =>
        this.pollLoop(index).catch((e: unknown) => {
          if (!this.polling.signal.aborted) {
            this.deps.logger.error('job loop stopped', { error: (e as Error).message });
          }
        }),
      ),
    ).then(() => undefined);
  }

  /** A reloaded spec (same GitLab URL and token); takes effect for the next job. */
  update(fleet: Fleet): void {
    this.fleet = fleet;
  }

  /** Job requests allowed open at once right now (adaptive; see the class comment). */
  get requestConcurrency(): number {
    return this.busy ? this.adaptive.allowed : 1;
  }

  /** The adaptive limit, a real number in [1, request_concurrency] (GitLab Runner's metric). */
  get adaptiveLimit(): number {
    return this.adaptive.limit;
  }

  /** Job requests open now. */
  get openRequests(): number {
    return this.requesting;
  }

  get runningJobs(): number {
    return this.jobs.size;
  }

  /**
   * Stops asking for jobs; running jobs get `graceMs` to finish, then are stopped hard. Without
   * `graceMs` they are left to end on their own (their job timeouts bound them).
   */
  async stop(graceMs?: number): Promise<void> {
    this.polling.abort();
    this.rotation?.cancel();
    for (const wake of [...this.parked]) wake();
    await this.loop;
    if (this.jobs.size > 0) {
      const timer =
        graceMs === undefined ? undefined : this.deps.time.after(graceMs, () => this.hard.abort());
      await Promise.allSettled([...this.jobs]);
      timer?.cancel();
    }
  }

  /**
   * Runner token rotation (GitLab Runner's `resetRunnerTokens`): at 3/4 of the way from now to the
   * token's expiry, `POST /runners/reset_authentication_token`; the client uses the new token from
   * then on. A failed attempt is retried after a quarter of the time left (at least a minute).
   */
  private scheduleRotation(expiresAt: string | undefined, attempt = 0): void {
    this.rotation?.cancel();
    this.rotation = undefined;
    if (!expiresAt || this.polling.signal.aborted) return;
    const expiry = Date.parse(expiresAt);
    if (!Number.isFinite(expiry)) return;
    const now = this.deps.time.now().getTime();
    const left = Math.max(0, expiry - now);
    const delay = attempt === 0 ? left * TOKEN_RESET_INTERVAL_FACTOR : Math.max(60_000, left / 4);
    this.rotation = this.deps.time.after(Math.min(delay, left), () => void this.rotate(expiresAt, attempt));
  }

  private async rotate(expiresAt: string, attempt: number): Promise<void> {
    try {
      const next = await this.deps.client.resetToken(this.polling.signal);
      const expires = next.tokenExpiresAt ?? undefined;
      this.deps.logger.info('runner authentication token rotated', { expires_at: expires ?? 'never' });
      await this.deps.onTokenRotated?.(next.token, expires).catch((e: unknown) => {
        this.deps.logger.warn('the rotated runner token is kept in memory only', {
          error: (e as Error).message,
          hint: 'a restart will need the new token: see docs/gitlab-job-api.md §1 "Token rotation"',
        });
      });
      this.scheduleRotation(expires);
    } catch (e) {
      if (this.polling.signal.aborted) return;
      this.deps.logger.error('runner authentication token rotation failed; retrying', {
        error: (e as Error).message,
        expires_at: expiresAt,
      });
      this.scheduleRotation(expiresAt, attempt + 1);
    }
  }

  /** A job request ended: adapt the limit, and wake the loops it lets ask. */
  private requested(outcome: { job: boolean; retried: boolean }): void {
    const before = this.requestConcurrency;
    this.adaptive.record(outcome);
    this.busy = outcome.job;
    if (this.requestConcurrency > before) for (const wake of [...this.parked]) wake();
  }

  /** Waits until this loop may request (its index is under `requestConcurrency`) or polling stops. */
  private async mayRequest(index: number): Promise<void> {
    while (index >= this.requestConcurrency && !this.polling.signal.aborted) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.parked.delete(wake);
          resolve();
        };
        this.parked.add(wake);
      });
    }
  }

  private async pollLoop(index: number): Promise<void> {
    const signal = this.polling.signal;
    while (!signal.aborted) {
      // Read on every turn: a reloaded fleet's check_interval applies from its next pause.
      const interval = this.checkIntervalMs();
      await this.mayRequest(index);
      if (signal.aborted) return;
      const preemptive = this.preemptive();
      let reservation: Reservation | undefined;
      if (preemptive) {
        reservation = this.deps.scheduler.reserve(this.fleet.name);
        if (!reservation) {
          await this.waitForSlot(interval);
          continue;
        }
      } else if (this.inFlight() >= this.totalSlots()) {
        await this.waitForSlot(interval);
        continue;
      }
      let job: JobPayload | undefined;
      const pushback = { retried: false };
      this.requesting++;
      try {
        job = await this.deps.client.requestJob(signal, pushback);
      } catch (e) {
        if (reservation) this.deps.scheduler.unreserve(reservation);
        if (signal.aborted) return;
        this.requested({ job: false, retried: pushback.retried });
        this.deps.logger.error('job request failed', {
          error: (e as Error).message,
          code: isFleetError(e) ? e.code : undefined,
        });
        await this.deps.time.sleep(UNHEALTHY_PAUSE_MS, signal).catch(() => undefined);
        continue;
      } finally {
        this.requesting--;
      }
      this.requested({ job: job !== undefined, retried: pushback.retried });
      if (!job) {
        // The queue is empty: only the first loop asks again, after the check interval.
        if (reservation) this.deps.scheduler.unreserve(reservation);
        const pause =
          this.deps.client.consecutiveUnhealthy >= UNHEALTHY_LIMIT ? UNHEALTHY_PAUSE_MS : interval;
        await this.deps.time.sleep(pause, signal).catch(() => undefined);
        continue;
      }
      // The job counts as starting at once (the free-slot bound), but its work begins on the next
      // turn of the event loop: this loop's next request goes out first, so a busy queue is not
      // asked more slowly because each job's first steps run in between.
      this.starting++;
      const received = job;
      this.track(
        new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.handle(received, reservation)),
      );
    }
  }

  /** The pause after an empty answer, from the fleet's spec unless the deps override it. */
  private checkIntervalMs(): number {
    if (this.deps.checkIntervalMs !== undefined) return this.deps.checkIntervalMs;
    const written = this.fleet.gitlab?.check_interval ?? DEFAULT_CHECK_INTERVAL;
    if (written !== this.intervalFor.written) {
      // Validation has checked the duration; a spec built in code that skipped it falls back.
      let ms: number;
      try {
        ms = parseDuration(written);
      } catch {
        ms = parseDuration(DEFAULT_CHECK_INTERVAL);
      }
      this.intervalFor = { written, ms };
    }
    return this.intervalFor.ms;
  }

  private track(p: Promise<void>): void {
    this.jobs.add(p);
    // A job's handling that throws must not end the manager (an unhandled rejection would, and
    // every other fleet's jobs with it): it is logged, the job's own reports already went out.
    void p
      .catch((e: unknown) => this.deps.logger.error('job handling failed', { error: (e as Error).message }))
      .finally(() => this.jobs.delete(p));
  }

  private async handle(job: JobPayload, reservation: Reservation | undefined): Promise<void> {
    const stop = new AbortController();
    if (this.hard.signal.aborted) stop.abort();
    this.jobStops.add(stop);
    try {
      await this.run(job, reservation, stop.signal);
    } finally {
      this.jobStops.delete(stop);
      this.deps.client.jobEnded(job);
    }
  }

  /** One job, from its `running` PUT to its end; `hardStop` is this job's share of `hard`. */
  private async run(
    job: JobPayload,
    reservation: Reservation | undefined,
    hardStop: AbortSignal,
  ): Promise<void> {
    const fleet = this.fleet;
    const log = this.deps.logger.child({ jobId: job.id });
    // Job deadlines run on the executors' clock (always real time; see root.ts), not the trace's.
    const clock = this.deps.ssh.time;
    const deadlineAt = clock.now().getTime() + jobTimeoutSeconds(job) * 1000;
    // The `running` PUT goes out before any work (§3 step 1), also before waiting for an instance:
    // the trace loop then keeps the job alive and sees a cancel while the fleet scales up. The
    // caller counted the job in `starting`.
    let started;
    try {
      log.info('job received', { job: job.job_info?.name, project: job.job_info?.project_name });
      started = await startJob(job, { client: this.deps.client, time: this.deps.time });
    } finally {
      this.starting--;
    }
    const unsupported = started === 'dropped' ? undefined : unsupportedJobReason(job);
    if (started === 'dropped' || unsupported) {
      if (reservation) this.deps.scheduler.unreserve(reservation);
      if (started === 'dropped') {
        log.info('job dropped: GitLab no longer wants it');
        this.deps.onJobDone?.(fleet.name, job, { state: 'dropped' });
      } else {
        log.warn('job refused', { reason: unsupported });
        await failRefusedJob(started.trace, unsupported!);
      }
      return;
    }
    // A `canceling` answer to the first PUT: the job is canceled before anything ran.
    if (started.graceful.aborted || started.hard.aborted) {
      if (reservation) this.deps.scheduler.unreserve(reservation);
      log.info('job canceled before it started');
      const outcome = failedBeforeRun('canceled', 'unknown_failure', 'canceled');
      started.trace.jobResult({ state: 'failed', message: outcome.message });
      await started.trace.finish({ state: 'failed', failureReason: 'unknown_failure' });
      this.deps.onJobDone?.(fleet.name, job, outcome);
      return;
    }
    let acquisition;
    // The job deadline runs from the job's arrival (GitLab Runner's covers acquiring an instance).
    const deadline = new AbortController();
    const timer = clock.after(Math.max(0, deadlineAt - clock.now().getTime()), () => deadline.abort());
    try {
      const signal = firstAbort(hardStop, started.hard, started.graceful, deadline.signal);
      acquisition = await this.deps.scheduler.acquire(reservation ?? fleet.name, signal);
    } catch (e) {
      const canceled = started.hard.aborted || started.graceful.aborted || hardStop.aborted;
      if (canceled || deadline.signal.aborted) {
        const outcome = canceled
          ? failedBeforeRun('canceled', 'unknown_failure', 'canceled while waiting for an instance')
          : failedBeforeRun(
              'timedout',
              'job_execution_timeout',
              `execution took longer than ${jobTimeoutSeconds(job)} seconds`,
            );
        log.warn('job ended while waiting for an instance', { reason: outcome.message });
        started.trace.jobResult({ state: 'failed', message: outcome.message });
        await started.trace.finish({ state: 'failed', failureReason: outcome.failureReason });
        this.deps.onJobDone?.(fleet.name, job, outcome);
      } else {
        const message = `no instance of fleet ${fleet.name} could take the job: ${(e as Error).message}`;
        log.warn('job refused', { reason: message });
        await failRefusedJob(started.trace, message);
      }
      return;
    } finally {
      timer.cancel();
    }
    const ref = groupRefFor(fleet);
    const provider = this.deps.providers.forFleet(fleet);
    let outcome: JobOutcome = { state: 'dropped' };
    try {
      outcome = await runAssignedJob(
        {
          job,
          fleet,
          connect: () => provider.connectInfo(ref, acquisition.instanceId),
          slot: acquisition.slot,
          instanceId: acquisition.instanceId,
          signal: hardStop,
          deadlineAt,
          ...(this.deps.tlsCaChain ? { tlsCaChain: this.deps.tlsCaChain } : {}),
        },
        {
          client: this.deps.client,
          ssh: this.deps.ssh,
          version: this.deps.version,
          shortToken: shortToken(this.deps.token),
          ...(this.deps.caches ? { caches: this.deps.caches } : {}),
          systemId: this.deps.systemId,
          time: this.deps.time,
          onOutput: this.deps.onOutput
            ? (id, chunk) => this.deps.onOutput?.(fleet.name, id, chunk)
            : undefined,
        },
        started,
      );
    } finally {
      const failed = outcome.state === 'failed';
      const broken = outcome.state === 'failed' && outcome.failureReason === 'runner_system_failure';
      await this.deps.scheduler.release(acquisition, { failed, instanceBroken: broken });
      log.info('job finished', {
        instance: acquisition.instanceId,
        state: outcome.state,
        ...(outcome.state === 'failed'
          ? { failureReason: outcome.failureReason, exitCode: outcome.exitCode }
          : {}),
      });
      this.deps.onJobDone?.(fleet.name, job, outcome);
    }
  }

  private preemptive(): boolean {
    try {
      return policyAt(this.fleet.policy, this.deps.time.now()).policy.preemptive_mode;
    } catch {
      return true;
    }
  }

  private totalSlots(): number {
    const max = this.fleet.max_instances > 0 ? this.fleet.max_instances : 1000;
    return max * Math.max(1, this.fleet.capacity_per_instance);
  }

  /** Jobs this fleet holds or may soon hold: a job request open now may bring one. */
  private inFlight(): number {
    const d = this.deps.scheduler.demand(this.fleet.name);
    return d.acquired + d.pending + d.reserved + this.starting + this.requesting;
  }

  /** Waits until a slot event of this fleet, or `ms`, whichever comes first. */
  private waitForSlot(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        unsubscribe();
        timer.cancel();
        this.polling.signal.removeEventListener('abort', done);
        resolve();
      };
      const unsubscribe = this.deps.scheduler.subscribe((e) => {
        if (e.fleet === this.fleet.name && (e.kind === 'instance' || e.kind === 'release')) done();
      });
      const timer: TimerHandle = this.deps.time.after(ms, done);
      this.polling.signal.addEventListener('abort', done, { once: true });
    });
  }
}
