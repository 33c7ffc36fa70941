/**
 * A GitLab-API-compatible coordinator for tests and the Quick start (docs/gitlab-job-api.md §7): the runner endpoints
 * of `/api/v4/` answered the way Rails (and, for long polling, Workhorse) answer them, a job queue,
 * and hooks to inject the replies runners must survive. Loopback only; not a security boundary.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, FleetError } from '../../errors.js';
import type { JobPayload } from '../../runtime/gitlab/job.js';
import { ArtifactRoutes, type ObjectStorageRequest } from './artifact-routes.js';
import { parseJsonObject, readBody, sendEmpty, sendJson, sendStatus } from './http-util.js';
import { isProcessing, JobStore, type CoordinatorJobView, type JobUpdateRecord } from './job-store.js';

export type { CoordinatorJobView, JobUpdateRecord } from './job-store.js';
export type { ObjectStorageRequest } from './artifact-routes.js';

export interface CoordinatorOptions {
  /** @default '127.0.0.1' */
  host?: string;
  /** 0 picks a free port. @default 0 */
  port?: number;
  /** Runner authentication tokens accepted by verify and jobs/request. */
  runnerTokens: string[];
  jobs?: JobPayload[];
  /**
   * Hold `jobs/request` while its `last_update` is current and nothing is queued, up to this long
   * (Workhorse's long poll). Unlike Workhorse, a job queued during the hold is answered at once
   * (201) rather than with a bare 204, which saves tests a round trip. @default 0 (no hold)
   */
  longPollMs?: number;
  /** `X-GitLab-Trace-Update-Interval` in seconds. @default 3 */
  traceUpdateIntervalSeconds?: number;
  /** Added to every `jobs/request` before it is answered, as a distant GitLab would (benchmarks). */
  requestDelayMs?: number;
  /** Where uploaded artifacts are kept. @default a temporary directory, removed on close */
  artifactsDir?: string;
  /** GitLab's maximum artifacts size: larger uploads get 413. @default 100 MiB (GitLab's default) */
  maxArtifactBytes?: number;
  /**
   * Answer `GET /jobs/:id/artifacts?direct_download=true` with a 302 to a second loopback server
   * (object storage with signed URLs), as GitLab with direct downloads does. @default false
   */
  objectStorage?: boolean;
  onEvent?: (event: CoordinatorEvent) => void;
  /**
   * Runner tokens expire this long after they are issued (`token_expires_at` in verify), as with
   * GitLab's runner token expiry settings; `POST /runners/reset_authentication_token` issues a new
   * one and revokes the old. Expired or revoked tokens get 403. @default no expiry
   */
  tokenTtlSeconds?: number;
}

export type CoordinatorEvent =
  | { type: 'assigned'; jobId: number; name: string; systemId: string }
  | {
      type: 'finished';
      jobId: number;
      name: string;
      state: string;
      failureReason?: string;
      exitCode?: number;
    }
  /** A PATCH was stored: the job's trace is now `bytes` long. */
  | { type: 'trace'; jobId: number; bytes: number };

/** Endpoints a `status` fault applies to. */
export type CoordinatorRoute = 'verify' | 'request' | 'update' | 'trace' | 'artifacts' | 'any';

export type CoordinatorFault =
  /** The next `count` calls to `route` get `status` (e.g. 409, 429 + Retry-After, 503). */
  | {
      kind: 'status';
      route: CoordinatorRoute;
      status: number;
      count?: number;
      retryAfterSeconds?: number;
      rateLimitResetTime?: Date;
    }
  /** The next `count` final PUTs of the job get 202 (trace still being archived). */
  | { kind: 'update-accepted'; jobId: number; count?: number }
  /** The next final PUT gets 412 and the stored trace is dropped: the runner must re-send it from 0. */
  | { kind: 'update-reset-trace'; jobId: number }
  /** The next PATCH gets 416; with `truncateTo`, the stored trace is first cut to that length. */
  | { kind: 'trace-range'; jobId: number; truncateTo?: number }
  /** The next PATCH is stored but answered 500, as if the reply was lost: the resend meets a 416. */
  | { kind: 'trace-reply-lost'; jobId: number };

export interface RecordedRequest {
  method: string;
  /** Path and query as received. */
  url: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The body of JSON requests, parsed; undefined for others (trace bytes, uploads). */
  json?: Record<string, unknown>;
}

export interface Coordinator {
  /** Base URL to configure runners with, e.g. `http://127.0.0.1:40123` (no `/api/v4`). */
  url: string;
  enqueue(job: JobPayload): void;
  jobs(): CoordinatorJobView[];
  job(id: number): CoordinatorJobView | undefined;
  /** `graceful`: running → canceling (→ canceled at the final PUT). `hard`: → canceled now. */
  cancel(id: number, mode: 'graceful' | 'hard'): void;
  inject(fault: CoordinatorFault): void;
  /** Resolves with the job's view once `predicate` holds. @throws FleetError(GITLAB) on timeout. */
  waitFor(
    id: number,
    predicate: (job: CoordinatorJobView) => boolean,
    timeoutMs?: number,
  ): Promise<CoordinatorJobView>;
  /** Every request answered so far, oldest first. */
  requests(): RecordedRequest[];
  /** `system_id`s seen on verify and jobs/request, with the last `info` each sent. */
  runners(): { systemId: string; info: unknown }[];
  /** Requests the object storage server received (with `objectStorage`). */
  objectStorageRequests(): ObjectStorageRequest[];
  /** Runner tokens valid now (rotation replaces them), for tests. */
  runnerTokens(): string[];
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer, url: URL) => Promise<void> | void;

export async function startCoordinator(opts: CoordinatorOptions): Promise<Coordinator> {
  const store = new JobStore();
  const faults: CoordinatorFault[] = [];
  const recorded: RecordedRequest[] = [];
  const runners = new Map<string, unknown>();
  const holds = new Set<() => void>();
  const interval = String(opts.traceUpdateIntervalSeconds ?? 3);
  const issue = () => (opts.tokenTtlSeconds ? Date.now() + opts.tokenTtlSeconds * 1000 : null);
  /** Valid runner tokens → expiry (ms) or null; the runner id is the position of its first token. */
  const tokens = new Map<string, { expires: number | null; id: number }>(
    opts.runnerTokens.map((tok, i) => [tok, { expires: issue(), id: i + 1 }]),
  );
  const validToken = (token: string | undefined) => {
    const t = token ? tokens.get(token) : undefined;
    if (!t) return undefined;
    if (t.expires !== null && t.expires <= Date.now()) return undefined;
    return t;
  };
  const expiresAt = (t: { expires: number | null }) =>
    t.expires === null ? null : new Date(t.expires).toISOString();
  for (const job of opts.jobs ?? []) store.enqueue(job);
  const artifacts = new ArtifactRoutes({
    store,
    dir: opts.artifactsDir ?? mkdtempSync(join(tmpdir(), 'runfleet-coordinator-artifacts-')),
    maxBytes: opts.maxArtifactBytes ?? 100 * 1024 * 1024,
    objectStorage: opts.objectStorage ?? false,
  });

  const jobHeaders = (id: number): Record<string, string> => ({
    'Job-Status': store.get(id)?.state ?? 'unknown',
    'X-GitLab-Trace-Update-Interval': interval,
  });

  /** Takes one matching fault, decrementing its count. */
  const takeFault = <K extends CoordinatorFault['kind']>(
    kind: K,
    match: (f: Extract<CoordinatorFault, { kind: K }>) => boolean,
  ): Extract<CoordinatorFault, { kind: K }> | undefined => {
    const i = faults.findIndex((f) => f.kind === kind && match(f as Extract<CoordinatorFault, { kind: K }>));
    if (i < 0) return undefined;
    const fault = faults[i] as Extract<CoordinatorFault, { kind: K }>;
    const left = ('count' in fault ? (fault.count ?? 1) : 1) - 1;
    if (left > 0) faults[i] = { ...fault, count: left };
    else faults.splice(i, 1);
    return fault;
  };

  const statusFault = (res: ServerResponse, route: CoordinatorRoute): boolean => {
    const f = takeFault('status', (x) => x.route === route || x.route === 'any');
    if (!f) return false;
    const headers: Record<string, string> = {};
    if (f.retryAfterSeconds !== undefined) headers['Retry-After'] = String(f.retryAfterSeconds);
    if (f.rateLimitResetTime) headers['RateLimit-ResetTime'] = f.rateLimitResetTime.toUTCString();
    sendJson(res, f.status, { message: `${f.status} injected by the test coordinator` }, headers);
    return true;
  };

  /** Job-level auth (§0): token from `JOB-TOKEN`, the body or the query must match the job's. */
  const authJob = (req: IncomingMessage, res: ServerResponse, id: number, bodyToken?: unknown, url?: URL) => {
    const job = store.get(id);
    if (!job) {
      sendJson(res, 404, { message: '404 Job Not Found' });
      return undefined;
    }
    const token =
      header(req, 'job-token') ??
      (typeof bodyToken === 'string' ? bodyToken : url?.searchParams.get('token'));
    if (token !== job.payload.token) {
      sendJson(res, 403, { message: '403 Forbidden' });
      return undefined;
    }
    if (!isProcessing(job.state)) {
      sendJson(res, 403, { message: '403 Forbidden - Job is not processing on runner' }, jobHeaders(id));
      return undefined;
    }
    return job;
  };

  const runnerToken = (req: IncomingMessage, body: Record<string, unknown>): string | undefined =>
    typeof body['token'] === 'string' ? body['token'] : header(req, 'runner-token');

  const verify: Handler = (req, res, raw) => {
    if (statusFault(res, 'verify')) return;
    const body = parseJsonObject(raw);
    const token = runnerToken(req, body);
    const valid = validToken(token);
    if (!valid) return sendJson(res, 403, { message: '403 Forbidden' });
    if (typeof body['system_id'] === 'string') runners.set(body['system_id'], body['info']);
    sendJson(res, 200, { id: valid.id, token, token_expires_at: expiresAt(valid) });
  };

  /** `POST /runners/reset_authentication_token`: a new token; the old one is revoked at once. */
  const resetToken: Handler = (req, res, raw) => {
    const body = parseJsonObject(raw);
    const token = runnerToken(req, body);
    const valid = validToken(token);
    if (!token || !valid) return sendJson(res, 403, { message: '403 Forbidden' });
    tokens.delete(token);
    const next = `glrt-rot${randomBytes(12).toString('hex')}`;
    const entry = { expires: issue(), id: valid.id };
    tokens.set(next, entry);
    sendJson(res, 201, { token: next, token_expires_at: expiresAt(entry) });
  };

  const requestJob: Handler = async (req, res, raw) => {
    if (statusFault(res, 'request')) return;
    if (opts.requestDelayMs) await new Promise((r) => setTimeout(r, opts.requestDelayMs));
    const body = parseJsonObject(raw);
    const token = runnerToken(req, body);
    if (!validToken(token)) return sendJson(res, 403, { message: '403 Forbidden' });
    const systemId = typeof body['system_id'] === 'string' ? body['system_id'] : '<legacy>';
    runners.set(systemId, body['info']);
    if (opts.longPollMs && body['last_update'] === store.version && !store.hasPending()) {
      await holdUntilQueueChanges(opts.longPollMs);
      if (res.destroyed) return;
    }
    const info = (body['info'] ?? {}) as { features?: Record<string, unknown> };
    const job = store.assignNext(systemId, info.features ?? {});
    if (!job) return sendEmpty(res, 204, { 'X-GitLab-Last-Update': store.version });
    opts.onEvent?.({ type: 'assigned', jobId: job.id, name: job.job_info.name, systemId });
    sendJson(res, 201, job, { 'X-GitLab-Last-Update': store.version });
  };

  const holdUntilQueueChanges = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        store.events.off('queue', done);
        holds.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      store.events.on('queue', done);
      holds.add(done);
    });

  const updateJob = (id: number): Handler =>
    function update(req, res, raw) {
      if (statusFault(res, 'update')) return;
      const body = parseJsonObject(raw);
      const job = authJob(req, res, id, body['token']);
      if (!job) return;
      const state = typeof body['state'] === 'string' ? body['state'] : '';
      if (!['running', 'success', 'failed'].includes(state)) {
        return sendJson(res, 400, { message: '400 Bad request - invalid state' }, jobHeaders(id));
      }
      const output = (body['output'] ?? {}) as { checksum?: unknown; bytesize?: unknown };
      const checksum =
        typeof output.checksum === 'string'
          ? output.checksum
          : typeof body['checksum'] === 'string'
            ? body['checksum']
            : undefined;
      const record: JobUpdateRecord = { state };
      if (typeof body['failure_reason'] === 'string') record.failure_reason = body['failure_reason'];
      if (typeof body['exit_code'] === 'number') record.exit_code = body['exit_code'];
      if (checksum !== undefined || typeof output.bytesize === 'number') {
        record.output = {
          checksum,
          bytesize: typeof output.bytesize === 'number' ? output.bytesize : undefined,
        };
      }
      const final = state !== 'running';
      // Rails answers 202 only to a final update that carries a checksum (§3).
      if (final && checksum !== undefined && takeFault('update-accepted', (f) => f.jobId === id)) {
        return sendStatus(res, 202, jobHeaders(id));
      }
      if (final && takeFault('update-reset-trace', (f) => f.jobId === id)) {
        store.truncateTrace(id, 0);
        return sendStatus(res, 412, jobHeaders(id));
      }
      store.recordUpdate(id, record);
      if (final) {
        const view = store.view(id);
        opts.onEvent?.({
          type: 'finished',
          jobId: id,
          name: job.payload.job_info.name,
          state: view?.state ?? state,
          failureReason: view?.failure_reason,
          exitCode: view?.exit_code,
        });
      }
      sendStatus(res, 200, jobHeaders(id));
    };

  const patchTrace = (id: number): Handler =>
    function patch(req, res, raw, url) {
      if (statusFault(res, 'trace')) return;
      const job = authJob(req, res, id, undefined, url);
      if (!job) return;
      const range = /^(\d+)-(\d+)$/.exec(header(req, 'content-range')?.trim() ?? '');
      if (!range)
        return sendJson(res, 400, { message: '400 Bad request - missing Content-Range' }, jobHeaders(id));
      const start = Number(range[1]);
      const forced = takeFault('trace-range', (f) => f.jobId === id);
      if (forced) {
        if (forced.truncateTo !== undefined) store.truncateTrace(id, forced.truncateTo);
        return sendStatus(res, 416, { ...jobHeaders(id), Range: `0-${store.get(id)?.trace.length ?? 0}` });
      }
      const result = store.appendTrace(id, start, raw);
      if (!result.accepted) return sendStatus(res, 416, { ...jobHeaders(id), Range: `0-${result.length}` });
      opts.onEvent?.({ type: 'trace', jobId: id, bytes: result.length });
      if (takeFault('trace-reply-lost', (f) => f.jobId === id))
        return sendJson(res, 500, { message: '500 lost' });
      sendStatus(res, 202, { ...jobHeaders(id), Range: `0-${result.length}` });
    };

  /** Streams the body itself (never read whole): called before the body is read. */
  const uploadArtifacts = async (req: IncomingMessage, res: ServerResponse, id: number, url: URL) => {
    if (statusFault(res, 'artifacts')) return void req.resume();
    if (!authJob(req, res, id, undefined, url)) return void req.resume();
    await artifacts.upload(req, res, id, url);
  };

  const downloadArtifacts = (id: number): Handler =>
    function download(req, res, _raw, url) {
      if (statusFault(res, 'artifacts')) return;
      return artifacts.download(req, res, id, url);
    };

  const route = (method: string, path: string): Handler | undefined => {
    if (method === 'POST' && path === 'runners/verify') return verify;
    if (method === 'POST' && path === 'jobs/request') return requestJob;
    if (method === 'POST' && path === 'runners/reset_authentication_token') return resetToken;
    if (method === 'DELETE' && (path === 'runners' || path === 'runners/managers')) {
      return (_req, res) => sendEmpty(res, 204);
    }
    const m = /^jobs\/(\d+)(\/trace|\/artifacts)?$/.exec(path);
    if (!m) return undefined;
    const id = Number(m[1]);
    if (method === 'PUT' && !m[2]) return updateJob(id);
    if (method === 'PATCH' && m[2] === '/trace') return patchTrace(id);
    if (method === 'GET' && m[2] === '/artifacts') return downloadArtifacts(id);
    return undefined;
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://coordinator');
    let json: Record<string, unknown> | undefined;
    res.on('finish', () => {
      recorded.push({
        method: req.method ?? '',
        url: req.url ?? '',
        status: res.statusCode,
        headers: { ...req.headers },
        json,
      });
    });
    const path = url.pathname.startsWith('/api/v4/') ? url.pathname.slice('/api/v4/'.length) : undefined;
    const upload = req.method === 'POST' ? /^jobs\/(\d+)\/artifacts$/.exec(path ?? '') : null;
    if (upload) {
      void uploadArtifacts(req, res, Number(upload[1]), url).catch(() => {
        if (!res.headersSent) sendJson(res, 500, { message: '500 upload failed' });
        else res.destroy();
      });
      return;
    }
    const handler = path === undefined ? undefined : route(req.method ?? '', path);
    void readBody(req)
      .then((body) => {
        if (header(req, 'content-type')?.startsWith('application/json')) json = parseJsonObject(body);
        return handler ? handler(req, res, body, url) : sendJson(res, 404, { message: '404 Not Found' });
      })
      .catch((e: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { message: `500 ${(e as Error).message}` });
        else res.destroy();
      });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  await artifacts.start(address.address);

  return {
    url: `http://${host}:${address.port}`,
    enqueue: (job) => store.enqueue(job),
    jobs: () => store.views(),
    job: (id) => store.view(id),
    runnerTokens: () => [...tokens.keys()].filter((tok) => validToken(tok)),
    cancel: (id, mode) => store.cancel(id, mode),
    inject: (fault) => void faults.push(fault),
    waitFor: (id, predicate, timeoutMs = 10_000) => waitForJob(store, id, predicate, timeoutMs),
    requests: () => [...recorded],
    runners: () => [...runners].map(([systemId, info]) => ({ systemId, info })),
    objectStorageRequests: () => [...artifacts.storageRequests],
    close: async () => {
      for (const release of [...holds]) release();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await artifacts.close();
    },
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function waitForJob(
  store: JobStore,
  id: number,
  predicate: (job: CoordinatorJobView) => boolean,
  timeoutMs: number,
): Promise<CoordinatorJobView> {
  return new Promise((resolve, reject) => {
    const check = (changed?: number) => {
      if (changed !== undefined && changed !== id) return;
      const view = store.view(id);
      if (view && predicate(view)) {
        cleanup();
        resolve(view);
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      const state = store.view(id)?.state ?? 'unknown';
      reject(
        new FleetError(
          ErrorCode.GITLAB,
          `coordinator: job ${id} did not reach the expected state (now ${state})`,
        ),
      );
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      store.events.off('change', check);
    };
    store.events.on('change', check);
    check();
  });
}
