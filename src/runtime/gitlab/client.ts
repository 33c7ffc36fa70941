/**
 * GitLab's runner job API as runfleet uses it (docs/gitlab-job-api.md §1–§4): verify the runner token, long-poll for
 * jobs, update a job's state, append to its trace. Each call returns what the runner must do next
 * (GitLab Runner's `UpdateJobResult`/`PatchTraceResult`), so callers never read HTTP statuses.
 *
 * Tokens travel only in bodies and headers, never in URLs, and are scrubbed from every message.
 */
import { parseGoBool } from '../script/build-settings.js';
import { ErrorCode, FleetError } from '../../errors.js';
import type { Logger } from '../../util/logger.js';
import type { Time } from '../../util/time.js';
import type { JobPayload } from './job.js';
import {
  mapFailureReason,
  runnerInfo,
  runnerUserAgent,
  type RunnerInfo,
  type RunnerInfoOptions,
} from './runner-info.js';
import { apiBaseUrl, isRetriedStatus, Transport, type ApiEndpoint, type ApiResponse } from './transport.js';
import { ArtifactsApi } from './artifacts-api.js';

export interface GitlabClientOptions {
  /** The GitLab URL as configured (`https://gitlab.example.com`, `/ci` suffix allowed). */
  url: string;
  /** Runner authentication token (`glrt-…`). Secret. */
  token: string;
  /** From `loadSystemId()`. */
  systemId: string;
  /** runfleet's version, e.g. `0.1.0`: sent in `User-Agent: gitlab-runner <version> (runfleet; …)` and `info`. */
  version: string;
  info?: Omit<RunnerInfoOptions, 'version'>;
  /**
   * Per-attempt timeout of `POST /jobs/request`. Must stay well above Workhorse's 50 s long poll.
   * @default 600_000 (GitLab Runner allows 10 min for headers)
   */
  requestJobTimeoutMs?: number;
  /** Per-attempt timeout of every other call. @default 120_000 */
  callTimeoutMs?: number;
  fetch?: typeof fetch;
  random?: () => number;
  /** Backoff sleeps and the time. @default systemTime */
  time?: Time;
  /** Where "Checking for jobs... failed" and transport warnings go. @default silentLogger */
  log?: Logger;
  /**
   * Told the outcome of every request attempt to a measured endpoint: the HTTP status, or -100 for
   * a network failure (`gitlab_runner_api_request_statuses_total`, as GitLab Runner counts it).
   */
  onApiRequest?: (endpoint: ApiEndpoint, status: number) => void;
}

/** The part of a job the API calls need. */
export type JobRef = Pick<JobPayload, 'id' | 'token'> & {
  features?: JobPayload['features'];
  /** Read for `CI_DEBUG_TRACE`, which PATCH reports as `debug_trace` (§5). */
  variables?: JobPayload['variables'];
};

export interface VerifyResult {
  /** Runner id; absent from old servers that reply a bare 200. */
  id?: number;
  tokenExpiresAt?: string | null;
}

export type JobState = 'running' | 'success' | 'failed';

export interface JobUpdate {
  state: JobState;
  /** Only with `failed`; mapped through `features.failure_reasons` (§3). */
  failureReason?: string;
  /** Sent when non-zero (GitLab's `omitempty`). */
  exitCode?: number;
  /** `checksum` is `crc32:%08x` of the whole trace sent; `bytesize` its length. */
  output?: { checksum: string; bytesize: number };
}

/** Common to every job-level result. */
interface ResultBase {
  /** HTTP status; 0 when the call failed without a reply. */
  status: number;
  /** The `Job-Status` header: GitLab's view of the job (`running`, `canceling`, `canceled`, …). */
  remoteState?: string;
  /** A positive `X-GitLab-Trace-Update-Interval`, in ms. */
  intervalMs?: number;
  /** `Job-Status: canceling`: the user asked for a graceful cancel (§3). */
  cancelRequested: boolean;
}

/**
 * What to do after `PUT /jobs/:id` (§3): `ok` done; `canceling` done, and cancel gracefully;
 * `accepted-retry` (202) wait `intervalMs` and resend; `reset-trace` (412) re-send the trace from 0;
 * `abort` stop the job now; `not-found` (404) the job is gone, stop; `retry` try again later.
 */
export type UpdateJobResult = ResultBase & {
  kind: 'ok' | 'canceling' | 'accepted-retry' | 'reset-trace' | 'abort' | 'not-found' | 'retry';
};

/**
 * What to do after `PATCH /jobs/:id/trace` (§4): `accepted` continue from `end`; `canceling` the
 * same, and cancel gracefully; `range-mismatch` (416) continue from `serverLength`; `abort` stop
 * the job now; `not-found` stop sending the trace; `retry` resend on the next tick.
 */
export type PatchTraceResult = ResultBase &
  (
    | { kind: 'accepted' | 'canceling'; end: number }
    | { kind: 'range-mismatch'; serverLength: number }
    | { kind: 'abort' | 'not-found' | 'retry' }
  );

const DEFAULT_REQUEST_TIMEOUT_MS = 600_000;
const DEFAULT_CALL_TIMEOUT_MS = 120_000;
/** Tokens of ended jobs still scrubbed; far more than the jobs that end within any log burst. */
const ENDED_TOKENS_KEPT = 256;

export class GitlabClient {
  /** `…/api/v4/`. */
  readonly baseUrl: string;
  readonly info: RunnerInfo;
  private readonly transport: Transport;
  /** Tokens of the jobs in hand: scrubbed from anything logged (see `jobEnded`). */
  private readonly jobTokens = new Set<string>();
  /**
   * Tokens of the last ENDED_TOKENS_KEPT jobs that ended, oldest first: still scrubbed, for a
   * late error message, but bounded, so a daemon that runs millions of jobs does not keep (and
   * scan) every token it ever saw.
   */
  private readonly endedTokens: string[] = [];
  private lastUpdateValue: string | undefined;
  /** `info` as JSON, made on first use (see `withInfo`). */
  private infoJson: string | undefined;
  private unhealthy = 0;
  /** The runner token in force: the configured one until a rotation replaces it. */
  private token: string;
  /** Tokens replaced by rotation: still scrubbed from anything logged. */
  private readonly retiredTokens: string[] = [];
  /** The artifact endpoints (§6), streamed over node:http; same base URL, time and secrets as the rest. */
  readonly artifacts: ArtifactsApi;

  constructor(private readonly opts: GitlabClientOptions) {
    this.token = opts.token;
    this.baseUrl = apiBaseUrl(opts.url);
    this.info = runnerInfo({ ...opts.info, version: opts.version });
    this.transport = new Transport({
      baseUrl: this.baseUrl,
      userAgent: runnerUserAgent(opts.version),
      secrets: () => [this.token, ...this.retiredTokens, ...this.jobTokens, ...this.endedTokens],
      fetch: opts.fetch,
      random: opts.random,
      time: opts.time,
      log: opts.log,
      onApiRequest: opts.onApiRequest,
    });
    this.artifacts = new ArtifactsApi({
      baseUrl: this.baseUrl,
      userAgent: runnerUserAgent(opts.version),
      time: opts.time,
      random: opts.random,
      scrub: (text) => this.transport.scrub(text),
    });
  }

  /**
   * The job is over for this manager (its final update settled, or it was dropped): its token
   * leaves the live set. GitLab revokes a job token when the job ends, so only a bounded number of
   * recent ones are still scrubbed.
   */
  jobEnded(job: JobRef): void {
    if (!this.jobTokens.delete(job.token)) return;
    this.endedTokens.push(job.token);
    if (this.endedTokens.length > ENDED_TOKENS_KEPT) this.endedTokens.shift();
  }

  /** Job tokens in hand, and kept after their jobs ended; for tests and metrics. */
  get knownJobTokens(): { live: number; ended: number } {
    return { live: this.jobTokens.size, ended: this.endedTokens.length };
  }

  /** The queue version last seen in `X-GitLab-Last-Update`; sent back as `last_update`. */
  get lastUpdate(): string | undefined {
    return this.lastUpdateValue;
  }

  /**
   * Consecutive unhealthy `requestJob` outcomes (403, network errors). GitLab Runner pauses an
   * entry for `unhealthy_interval` after 3 (§2); the caller owns that policy.
   */
  get consecutiveUnhealthy(): number {
    return this.unhealthy;
  }

  /** Replaces every token this client knows in `text`. */
  scrub(text: string): string {
    return this.transport.scrub(text);
  }

  /**
   * `POST /runners/verify` (§1), with `info` so GitLab records runtime features at once.
   * @throws FleetError(GITLAB_AUTH) on 403 (invalid or deleted runner) or 422 (orphaned);
   *   FleetError(GITLAB, retryable) on other failures.
   */
  async verify(signal?: AbortSignal): Promise<VerifyResult> {
    const res = await this.transport.send({
      method: 'POST',
      path: 'runners/verify',
      headers: { 'RUNNER-TOKEN': this.token },
      json: { token: this.token, system_id: this.opts.systemId, info: this.info },
      expectJson: true,
      signal,
      timeoutMs: this.opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
    });
    if (res.status === 200) {
      // Old servers reply a bare 200 without JSON: still a valid token.
      if (!isJson(res)) return {};
      const body = parseJson(res.text) as { id?: number; token_expires_at?: string | null } | undefined;
      return { id: body?.id, tokenExpiresAt: body?.token_expires_at };
    }
    if (res.status === 403 || res.status === 422) throw this.authError(res.status, 'runners/verify');
    throw new FleetError(ErrorCode.GITLAB, `POST runners/verify failed with HTTP ${res.status}`, {
      retryable: true,
    });
  }

  /**
   * `POST /runners/reset_authentication_token` (§1, "Token rotation"): GitLab issues a new runner
   * token and revokes this one. Every later call uses the new token; the old one stays scrubbed.
   * @returns the new token (a secret: persist it, never log it) and when it expires
   * @throws FleetError(GITLAB_AUTH) on 403; FleetError(GITLAB, retryable) on other failures
   */
  async resetToken(signal?: AbortSignal): Promise<{ token: string; tokenExpiresAt?: string | null }> {
    const res = await this.transport.send({
      method: 'POST',
      path: 'runners/reset_authentication_token',
      headers: { 'RUNNER-TOKEN': this.token },
      json: { token: this.token },
      expectJson: true,
      signal,
      timeoutMs: this.opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
    });
    if (res.status === 201) {
      const body = (isJson(res) ? parseJson(res.text) : undefined) as
        { token?: unknown; token_expires_at?: string | null } | undefined;
      if (typeof body?.token !== 'string' || body.token === '') {
        throw new FleetError(
          ErrorCode.GITLAB,
          'POST runners/reset_authentication_token: no token in the reply',
          {
            retryable: true,
          },
        );
      }
      this.retiredTokens.push(this.token);
      this.token = body.token;
      return { token: body.token, tokenExpiresAt: body.token_expires_at ?? null };
    }
    if (res.status === 403) throw this.authError(403, 'runners/reset_authentication_token');
    throw new FleetError(
      ErrorCode.GITLAB,
      `POST runners/reset_authentication_token failed with HTTP ${res.status}`,
      { retryable: true },
    );
  }

  /**
   * `POST /jobs/request` (§2): one long poll. Resolves with a job (201) or `undefined` (204, 409,
   * 422, 429 after retries, 503, network errors: poll again after `check_interval`).
   * `pushback`, when given, is told whether GitLab answered a retried status (429, 5xx) on the way,
   * whatever the final answer: adaptive request concurrency halves its limit then (GitLab Runner's
   * retry tracker, `R:network/retry_tracker.go`).
   * @throws FleetError(GITLAB_AUTH) on 403: the token was revoked; polling again will not help.
   */
  async requestJob(signal?: AbortSignal, pushback?: { retried: boolean }): Promise<JobPayload | undefined> {
    const body: Record<string, unknown> = { token: this.token, system_id: this.opts.systemId };
    if (this.lastUpdateValue !== undefined) body['last_update'] = this.lastUpdateValue;
    let res: ApiResponse;
    try {
      res = await this.transport.send({
        method: 'POST',
        path: 'jobs/request',
        endpoint: 'request_job',
        headers: { 'RUNNER-TOKEN': this.token },
        jsonText: this.withInfo(body),
        expectJson: true,
        signal,
        timeoutMs: this.opts.requestJobTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      });
    } catch (e) {
      if (signal?.aborted) throw e;
      this.unhealthy++;
      this.transport.log.warn('Checking for jobs... failed', { err: (e as Error).message });
      return undefined;
    }
    if (pushback) pushback.retried = res.attempts > 1 || isRetriedStatus(res.status);
    const lastUpdate = res.headers.get('x-gitlab-last-update');
    if (lastUpdate) this.lastUpdateValue = lastUpdate;

    if (res.status === 403) {
      this.unhealthy++;
      throw this.authError(403, 'jobs/request');
    }
    if (res.status === 201) {
      const job = isJson(res) ? (parseJson(res.text) as JobPayload | undefined) : undefined;
      if (!job || typeof job.id !== 'number' || typeof job.token !== 'string') {
        this.unhealthy++;
        this.transport.log.warn('Checking for jobs... invalid job payload', { status: 201 });
        return undefined;
      }
      this.unhealthy = 0;
      this.jobTokens.add(job.token);
      this.transport.log.info('Checking for jobs... received', { jobId: job.id });
      return job;
    }
    this.unhealthy = 0;
    if (res.status !== 204) this.transport.log.warn('Checking for jobs... failed', { status: res.status });
    return undefined;
  }

  /** `PUT /jobs/:id` (§3). Never throws for HTTP or network failures: they come back as `retry`. */
  async updateJob(job: JobRef, update: JobUpdate, signal?: AbortSignal): Promise<UpdateJobResult> {
    this.jobTokens.add(job.token);
    const body: Record<string, unknown> = { token: job.token, state: update.state };
    if (update.state === 'failed') {
      body['failure_reason'] = mapFailureReason(update.failureReason, job.features?.failure_reasons);
    }
    if (update.output) {
      body['checksum'] = update.output.checksum;
      body['output'] = { checksum: update.output.checksum, bytesize: update.output.bytesize };
    }
    if (update.exitCode) body['exit_code'] = toInt32(update.exitCode);

    const res = await this.jobCall(
      {
        method: 'PUT',
        path: `jobs/${job.id}`,
        endpoint: 'update_job',
        headers: { 'JOB-TOKEN': job.token },
        jsonText: this.withInfo(body),
      },
      signal,
    );
    const base = resultBase(res);
    if (base.remoteState === 'canceled' || base.remoteState === 'failed' || base.status === 403) {
      return { ...base, kind: 'abort' };
    }
    switch (base.status) {
      case 200:
        return { ...base, kind: base.cancelRequested ? 'canceling' : 'ok' };
      case 202:
        return { ...base, kind: 'accepted-retry' };
      case 412:
        return { ...base, kind: 'reset-trace' };
      case 404:
        return { ...base, kind: 'not-found' };
      default:
        if (base.status !== 0)
          this.transport.log.warn('Updating job failed', { jobId: job.id, status: base.status });
        return { ...base, kind: 'retry' };
    }
  }

  /**
   * `PATCH /jobs/:id/trace` (§4) with `bytes` (1 byte to 1 MiB) starting at offset `start`.
   * Never throws for HTTP or network failures: they come back as `retry`.
   */
  async patchTrace(
    job: JobRef,
    bytes: Uint8Array,
    start: number,
    signal?: AbortSignal,
  ): Promise<PatchTraceResult> {
    this.jobTokens.add(job.token);
    if (bytes.length === 0)
      throw new FleetError(ErrorCode.INTERNAL, 'patchTrace: GitLab rejects empty patches');
    const end = start + bytes.length;
    const res = await this.jobCall(
      {
        method: 'PATCH',
        path: `jobs/${job.id}/trace?debug_trace=${isDebugTrace(job)}`,
        endpoint: 'patch_trace',
        headers: {
          'JOB-TOKEN': job.token,
          'Content-Type': 'text/plain',
          'Content-Range': `${start}-${end - 1}`,
        },
        body: bytes,
      },
      signal,
    );
    const base = resultBase(res);
    if (base.remoteState === 'canceled' || base.remoteState === 'failed' || base.status === 403) {
      return { ...base, kind: 'abort' };
    }
    switch (base.status) {
      case 202:
        return { ...base, kind: base.cancelRequested ? 'canceling' : 'accepted', end };
      case 404:
        return { ...base, kind: 'not-found' };
      case 416: {
        const serverLength = parseRangeLength(res?.headers.get('range'));
        if (serverLength !== undefined) return { ...base, kind: 'range-mismatch', serverLength };
        return { ...base, kind: 'retry' };
      }
      default:
        return { ...base, kind: 'retry' };
    }
  }

  /** A job-level call; a network failure becomes `undefined` (the caller's `retry`). */
  private async jobCall(
    req: {
      method: 'PUT' | 'PATCH';
      path: string;
      endpoint: ApiEndpoint;
      headers: Record<string, string>;
      jsonText?: string;
      body?: Uint8Array;
    },
    signal?: AbortSignal,
  ): Promise<ApiResponse | undefined> {
    try {
      return await this.transport.send({
        ...req,
        signal,
        timeoutMs: this.opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
      });
    } catch (e) {
      if (signal?.aborted) throw e;
      this.transport.log.warn('GitLab job call failed', { err: (e as Error).message });
      return undefined;
    }
  }

  /**
   * `{"info": …, …fields}` as JSON. `info` is the same for every request (about 850 bytes): it is
   * serialized once, not for each job request and job update (three a job).
   */
  private withInfo(fields: Record<string, unknown>): string {
    this.infoJson ??= JSON.stringify(this.info);
    const rest = JSON.stringify(fields);
    return rest === '{}' ? `{"info":${this.infoJson}}` : `{"info":${this.infoJson},${rest.slice(1)}`;
  }

  private authError(status: number, path: string): FleetError {
    const why = status === 422 ? 'is orphaned' : 'was rejected (invalid or deleted runner)';
    return new FleetError(
      ErrorCode.GITLAB_AUTH,
      `GitLab: the runner token ${why}: HTTP ${status} from ${path}`,
      {
        retryable: false,
        hint: 'check the fleet gitlab.token: a runner authentication token (glrt-…) of a runner that exists',
      },
    );
  }
}

function resultBase(res: ApiResponse | undefined): ResultBase {
  if (!res) return { status: 0, cancelRequested: false };
  const remoteState = res.headers.get('job-status') ?? undefined;
  const interval = Number(res.headers.get('x-gitlab-trace-update-interval'));
  return {
    status: res.status,
    remoteState,
    intervalMs: Number.isFinite(interval) && interval > 0 ? interval * 1000 : undefined,
    cancelRequested: remoteState === 'canceling',
  };
}

/**
 * Whether the job runs with `CI_DEBUG_TRACE` on (its last definition, the same test that turns on
 * `set -o xtrace` in the stage scripts). GitLab must be told (`debug_trace=true`): it marks the log
 * as a debug trace, which only users allowed to see one may read (§5).
 */
function isDebugTrace(job: JobRef): boolean {
  const vars = job.variables ?? [];
  for (let i = vars.length - 1; i >= 0; i--) {
    // strconv.ParseBool, as GitLab Runner reads it (`1`, `t`, `True` … also turn it on).
    if (vars[i]?.key === 'CI_DEBUG_TRACE') return parseGoBool(vars[i]?.value ?? '') ?? false;
  }
  return false;
}

/** `Range: 0-<length>`: GitLab sends a length, not an index (§4). */
export function parseRangeLength(range: string | null | undefined): number | undefined {
  const m = /^\s*\d+-(\d+)\s*$/.exec(range ?? '');
  return m ? Number(m[1]) : undefined;
}

function isJson(res: ApiResponse): boolean {
  return (res.headers.get('content-type') ?? '').toLowerCase().includes('application/json');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Exit codes are int32 in GitLab (§5). */
function toInt32(n: number): number {
  return Math.trunc(n) | 0;
}
