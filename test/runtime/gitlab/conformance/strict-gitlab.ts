/**
 * A strict fake of GitLab's runner API (docs/gitlab-job-api.md §0–§4), written apart from
 * src/devtools/coordinator so the two cannot share a blind spot. It answers the way Rails answers
 * (and, for `jobs/request` with a `last_update`, the way Workhorse answers), and checks every
 * request runfleet makes against the spec. Each departure becomes a line in `violations`; tests
 * end with `t.same(server.violations, [])`. Replies can be overridden per route to inject the
 * statuses a runner must survive. Loopback only.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  checkCommon,
  checkJobUpdateBody,
  checkRunnerCall,
  checkTracePatch,
  header,
  checksum,
  parseJsonBody,
  type Violations,
} from './strict-checks.js';

export { checksum } from './strict-checks.js';

export { MIB } from './strict-checks.js';

export type Route = 'verify' | 'request' | 'update' | 'trace';
export type FakeJobState = 'pending' | 'running' | 'canceling' | 'canceled' | 'success' | 'failed';

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  /** Sent as `application/json`. */
  json?: unknown;
  /** Sent as `text/plain`; neither json nor text: no body. */
  text?: string;
}

export interface SeenRequest {
  seq: number;
  route: Route | 'unknown';
  method: string;
  /** Path without the query. */
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: Buffer;
  json?: Record<string, unknown>;
  jobId?: number;
  /** `start`, `keep-alive` or `final` for PUTs. */
  kind?: 'start' | 'keep-alive' | 'final';
  status?: number;
  replyHeaders?: Record<string, string>;
  /** ms since the server started. */
  at: number;
}

export interface FakeJob {
  payload: { id: number; token: string } & Record<string, unknown>;
  state: FakeJobState;
  trace: Buffer;
  puts: SeenRequest[];
  patches: SeenRequest[];
  /** Set once a reply told the runner to abort (403, or Job-Status canceled/failed). */
  abort?: { by: 'start' | 'keep-alive' | 'trace' | 'final'; seq: number };
  afterAbort: { patches: number; running: number; finals: number };
  /** The final PUT got a terminal reply (200, 403, 404): nothing may follow. */
  closed: boolean;
  /** A PATCH was refused or lost by an override: the final checksum cannot be checked. */
  traceBroken: boolean;
}

export interface Override {
  route: Route;
  jobId?: number;
  /** Only requests this accepts; e.g. final PUTs. */
  when?: (r: SeenRequest) => boolean;
  /** A reply, or a function giving one (undefined: the default reply). */
  reply: Reply | ((r: SeenRequest, job: FakeJob | undefined) => Reply | undefined);
  /** @default 1 */
  times?: number;
}

export interface StrictGitlabOptions {
  runnerToken: string;
  /** `X-GitLab-Trace-Update-Interval`, seconds. @default 3 */
  traceIntervalSeconds?: number;
  /** Workhorse long polling in front of `jobs/request` (§2). @default true */
  workhorse?: boolean;
  /** How long Workhorse holds a request whose `last_update` is current. @default 30 */
  longPollMs?: number;
  /** Old servers answer verify with a bare 200 and no JSON body. @default 'json' */
  verifyStyle?: 'json' | 'bare';
}

export class StrictGitlab {
  readonly violations: string[] = [];
  readonly requests: SeenRequest[] = [];
  /** `change` after every request and queue change, `queue` when the queue changes, `held` when Workhorse starts holding a request. */
  readonly events = new EventEmitter();
  url = '';
  private readonly jobs = new Map<number, FakeJob>();
  private readonly overrides: Override[] = [];
  private queueVersion = randomBytes(6).toString('hex');
  /** Every X-GitLab-Last-Update value sent, latest last. */
  private readonly lastUpdatesSent: string[] = [];
  private readonly server = createServer((req, res) => void this.handle(req, res));
  private readonly started = Date.now();
  private readonly v: Violations;

  constructor(readonly opts: StrictGitlabOptions) {
    this.events.setMaxListeners(0);
    this.v = (seq, msg) => void this.violations.push(`#${seq} ${msg}`);
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  enqueue(payload: FakeJob['payload']): void {
    this.jobs.set(payload.id, {
      payload,
      state: 'pending',
      trace: Buffer.alloc(0),
      puts: [],
      patches: [],
      afterAbort: { patches: 0, running: 0, finals: 0 },
      closed: false,
      traceBroken: false,
    });
    this.bumpQueue();
  }

  job(id: number): FakeJob {
    const job = this.jobs.get(id);
    if (!job) throw new Error(`no job ${id}`);
    return job;
  }

  /** A user cancel: `graceful` → canceling (needs cancel_gracefully), `hard` → canceled. */
  cancel(id: number, mode: 'graceful' | 'hard'): void {
    const job = this.job(id);
    job.state = mode === 'graceful' && job.state === 'running' ? 'canceling' : 'canceled';
    this.events.emit('change');
  }

  /** Forgets an abort or a final reply, for tests that walk one job through many replies. */
  forgive(id: number): void {
    const job = this.job(id);
    job.abort = undefined;
    job.afterAbort = { patches: 0, running: 0, finals: 0 };
    job.closed = false;
  }

  override(o: Override): void {
    this.overrides.push({ times: 1, ...o });
  }

  /** Resolves once `cond` holds (checked after every request). */
  waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!cond()) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`strict gitlab: timed out waiting for ${what}`));
      }, ms);
      const cleanup = () => {
        clearTimeout(timer);
        this.events.off('change', check);
      };
      this.events.on('change', check);
      check();
    });
  }

  /** Requests about one job, oldest first. */
  jobRequests(id: number): SeenRequest[] {
    return this.requests.filter((r) => r.jobId === id);
  }

  private bumpQueue(): void {
    this.queueVersion = randomBytes(6).toString('hex');
    this.events.emit('queue');
    this.events.emit('change');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://fake');
    const r: SeenRequest = {
      seq: this.requests.length + 1,
      route: 'unknown',
      method: req.method ?? '',
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body: Buffer.concat(chunks),
      at: Date.now() - this.started,
    };
    this.requests.push(r);
    const reply = (await this.route(r)) ?? { status: 500, text: 'fake: no reply' };
    r.status = reply.status;
    r.replyHeaders = reply.headers ?? {};
    this.trackAbort(r);
    send(res, reply);
    this.events.emit('change');
  }

  private async route(r: SeenRequest): Promise<Reply> {
    checkCommon(r, [this.opts.runnerToken, ...[...this.jobs.values()].map((j) => j.payload.token)], this.v);
    const path = r.path.startsWith('/api/v4/') ? r.path.slice('/api/v4/'.length) : undefined;
    if (path === undefined) {
      this.v(r.seq, `path ${r.path} is not under /api/v4/`);
      return { status: 404, json: { message: '404 Not Found' } };
    }
    const m = /^jobs\/(\d+)(\/trace)?$/.exec(path);
    if (r.method === 'POST' && path === 'runners/verify') r.route = 'verify';
    else if (r.method === 'POST' && path === 'jobs/request') r.route = 'request';
    else if (m && r.method === 'PUT' && !m[2]) r.route = 'update';
    else if (m && r.method === 'PATCH' && m[2]) r.route = 'trace';
    if (m) r.jobId = Number(m[1]);
    switch (r.route) {
      case 'verify':
        return this.verify(r);
      case 'request':
        return this.requestJob(r);
      case 'update':
        return this.update(r);
      case 'trace':
        return this.patch(r);
      default:
        this.v(r.seq, `${r.method} ${r.path} is not a runner endpoint`);
        return { status: 404, json: { message: '404 Not Found' } };
    }
  }

  private takeOverride(r: SeenRequest, job: FakeJob | undefined): Reply | undefined {
    for (const [i, o] of this.overrides.entries()) {
      if (o.route !== r.route || (o.jobId !== undefined && o.jobId !== r.jobId)) continue;
      if (o.when && !o.when(r)) continue;
      const left = (o.times ?? 1) - 1;
      if (left > 0) this.overrides[i] = { ...o, times: left };
      else this.overrides.splice(i, 1);
      return typeof o.reply === 'function' ? o.reply(r, job) : o.reply;
    }
    return undefined;
  }

  private verify(r: SeenRequest): Reply {
    const body = checkRunnerCall(r, this.opts.runnerToken, ['token', 'system_id', 'info'], this.v);
    const o = this.takeOverride(r, undefined);
    if (o) return o;
    if (!body) return { status: 403, json: { message: '403 Forbidden' } };
    if (this.opts.verifyStyle === 'bare') return { status: 200 };
    return { status: 200, json: { id: 1, token: this.opts.runnerToken, token_expires_at: null } };
  }

  private async requestJob(r: SeenRequest): Promise<Reply> {
    const body = checkRunnerCall(
      r,
      this.opts.runnerToken,
      ['token', 'system_id', 'info', 'last_update', 'session'],
      this.v,
    );
    const lu = body?.['last_update'];
    const latest = this.lastUpdatesSent.at(-1);
    if (latest === undefined && lu !== undefined)
      this.v(r.seq, `request: last_update ${JSON.stringify(lu)} before any X-GitLab-Last-Update`);
    if (latest !== undefined && lu !== latest)
      this.v(r.seq, `request: last_update ${JSON.stringify(lu)}, last sent ${latest}`);
    const o = this.takeOverride(r, undefined);
    if (o) return this.noteLastUpdate(o);
    if (!body) return { status: 403, json: { message: '403 Forbidden' } };
    // Workhorse answers itself while the runner's queue version is current (§2).
    if (this.opts.workhorse !== false && typeof lu === 'string' && lu === this.queueVersion) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.events.off('queue', done);
          resolve();
        };
        const timer = setTimeout(done, this.opts.longPollMs ?? 30);
        this.events.on('queue', done);
        this.events.emit('held');
      });
      return { status: 204, headers: { 'Gitlab-Ci-Builds-Polling': 'yes' } };
    }
    // Rails (`acquire_ci_job!`).
    if (lu === this.queueVersion) return this.noteLastUpdate({ status: 204, headers: lastUpdate(lu) });
    const job = [...this.jobs.values()].find((j) => j.state === 'pending');
    if (!job) return this.noteLastUpdate({ status: 204, headers: lastUpdate(this.queueVersion) });
    job.state = 'running';
    return { status: 201, json: job.payload };
  }

  private noteLastUpdate(reply: Reply): Reply {
    const value = reply.headers?.['X-GitLab-Last-Update'];
    if (value) this.lastUpdatesSent.push(value);
    return reply;
  }

  /** Job-level auth and ordering shared by PUT and PATCH; a reply when the call is refused. */
  private jobCall(r: SeenRequest, job: FakeJob | undefined): Reply | undefined {
    if (!job) {
      this.v(r.seq, `${r.route}: unknown job ${r.jobId}`);
      return { status: 404, json: { message: '404 Not Found' } };
    }
    if (header(r, 'job-token') !== job.payload.token) this.v(r.seq, `${r.route}: JOB-TOKEN header`);
    if (Object.values(r.headers).some((h) => String(h).includes(this.opts.runnerToken)))
      this.v(r.seq, `${r.route}: the runner token travels with a job call`);
    if (job.state === 'pending') this.v(r.seq, `${r.route}: job ${r.jobId} was never assigned`);
    if (job.closed) this.v(r.seq, `${r.route}: a call after the final update was answered`);
    if (job.abort) {
      const a = job.afterAbort;
      if (r.route === 'trace') a.patches++;
      else if (r.kind === 'final') a.finals++;
      else a.running++;
      const by = job.abort.by;
      if (
        by === 'start' ||
        by === 'final' ||
        a.running > 0 ||
        a.finals > 1 ||
        a.patches > (by === 'trace' ? 0 : 1)
      )
        this.v(r.seq, `${r.route}: a call after the abort of #${job.abort.seq} (${by})`);
    }
    if (job.state !== 'running' && job.state !== 'canceling')
      return {
        status: 403,
        json: { message: '403 Forbidden - Job is not running' },
        headers: this.jobHeaders(job),
      };
    return undefined;
  }

  private jobHeaders(job: FakeJob): Record<string, string> {
    return {
      'Job-Status': job.state,
      'X-GitLab-Trace-Update-Interval': String(this.opts.traceIntervalSeconds ?? 3),
    };
  }

  private update(r: SeenRequest): Reply {
    const job = this.jobs.get(r.jobId ?? -1);
    const body = parseJsonBody(r, false, this.v);
    const state = body['state'];
    r.kind = job && job.puts.length === 0 ? 'start' : state === 'running' ? 'keep-alive' : 'final';
    if (job) {
      job.puts.push(r);
      checkJobUpdateBody(r, body, job, (msg) => this.v(r.seq, `update: ${msg}`));
      if (r.kind === 'final' && !job.traceBroken && !job.abort) {
        const output = body['output'] as { checksum?: unknown; bytesize?: unknown } | undefined;
        if (output?.checksum !== checksum(job.trace) || output?.bytesize !== job.trace.length)
          this.v(
            r.seq,
            `update: final output ${JSON.stringify(output)} vs stored ${checksum(job.trace)}/${job.trace.length}`,
          );
      }
    }
    const refused = this.jobCall(r, job);
    const o = this.takeOverride(r, job);
    if (o) return o;
    if (refused || !job) return refused ?? { status: 404 };
    if (!['running', 'success', 'failed'].includes(String(state)))
      return { status: 400, text: '400', headers: this.jobHeaders(job) };
    if (state !== 'running') job.state = job.state === 'canceling' ? 'canceled' : (state as FakeJobState);
    return { status: 200, text: '200', headers: this.jobHeaders(job) };
  }

  private patch(r: SeenRequest): Reply {
    const job = this.jobs.get(r.jobId ?? -1);
    if (job) job.patches.push(r);
    const range = checkTracePatch(r, job, this.v);
    const refused = this.jobCall(r, job);
    const o = this.takeOverride(r, job);
    if (o) {
      if (job && o.status !== 202 && o.status !== 416) job.traceBroken = true;
      return o;
    }
    if (refused || !job) return refused ?? { status: 404 };
    if (!range) return { status: 400, text: '400', headers: this.jobHeaders(job) };
    const headers = this.jobHeaders(job);
    if (range.start !== job.trace.length)
      return { status: 416, text: '416', headers: { ...headers, Range: `0-${job.trace.length}` } };
    job.trace = Buffer.concat([job.trace, r.body]);
    return { status: 202, text: '202', headers: { ...headers, Range: `0-${job.trace.length}` } };
  }

  /** Records an abort reply (§3/§4 tables: 403, or Job-Status canceled/failed) for the job. */
  private trackAbort(r: SeenRequest): void {
    if (r.jobId === undefined || (r.route !== 'update' && r.route !== 'trace')) return;
    const job = this.jobs.get(r.jobId);
    if (!job) return;
    const remote = r.replyHeaders?.['Job-Status'];
    const isAbort = r.status === 403 || remote === 'canceled' || remote === 'failed';
    if (r.kind === 'final' && (r.status === 200 || r.status === 403 || r.status === 404)) job.closed = true;
    if (r.kind === 'final' && r.status === 200) return;
    if (isAbort || (r.route === 'update' && r.status === 404)) {
      job.abort ??= { by: r.route === 'trace' ? 'trace' : (r.kind ?? 'final'), seq: r.seq };
    }
  }
}

function lastUpdate(value: string): Record<string, string> {
  return { 'X-GitLab-Last-Update': value };
}

function send(res: ServerResponse, reply: Reply): void {
  const headers: Record<string, string> = { ...reply.headers };
  let body: string | undefined;
  if (reply.json !== undefined) {
    body = JSON.stringify(reply.json);
    headers['Content-Type'] = 'application/json';
  } else if (reply.text !== undefined) {
    body = reply.text;
    headers['Content-Type'] = 'text/plain';
  }
  if (body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(body));
  res.writeHead(reply.status, headers);
  res.end(body);
}

export async function startStrictGitlab(opts: StrictGitlabOptions): Promise<StrictGitlab> {
  return new StrictGitlab(opts).listen();
}
