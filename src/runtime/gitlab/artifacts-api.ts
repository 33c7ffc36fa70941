/**
 * The artifact endpoints of GitLab's job API (docs/gitlab-job-api.md §6), streamed both ways:
 * uploads are a multipart body produced while it is sent, downloads a body handed to the caller
 * as it arrives. gitlab-runner's `UploadRawArtifacts` / `DownloadArtifacts` and the uploader's
 * retry rules (three attempts, six while the server answers 503, 307 moves to another host,
 * 403 and 413 are final).
 *
 * The job token travels only in `JOB-TOKEN` to GitLab's own host; a redirect to object storage
 * is followed without it (the signed URL carries its own credentials).
 */
import { randomBytes } from 'node:crypto';
import {
  request as httpRequest,
  type ClientRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { ErrorCode, FleetError } from '../../errors.js';
import { systemTime, type Time } from '../../util/time.js';

export interface ArtifactsApiOptions {
  /** `…/api/v4/`. */
  baseUrl: string;
  userAgent: string;
  time?: Time;
  /** In [0, 1); jitters the backoff. */
  random?: () => number;
  /** Replaces every known secret in a message. */
  scrub: (text: string) => string;
}

export interface UploadParams {
  jobId: number;
  token: string;
  /** Multipart file name: `<name>.zip`, `<name>.gz`, `<name>`. */
  filename: string;
  artifactType: string;
  artifactFormat: string;
  expireIn?: string;
  /**
   * A fresh body for each attempt; `done` rejects if producing it failed (that is final, never
   * retried). `signal` aborts when the attempt is given up: stop producing.
   */
  body: (signal: AbortSignal) => { stream: Readable; done: Promise<unknown> };
  signal?: AbortSignal;
  /** Told before each retry, for the job log. */
  onRetry?: (attempt: number, why: string) => void;
}

export interface UploadResult {
  status: number;
  statusText: string;
  attempts: number;
}

/** Why an artifact call failed for good, with the HTTP status when there was one. */
export class ArtifactError extends FleetError {
  constructor(
    message: string,
    readonly status: number | undefined,
    retryable: boolean,
  ) {
    super(ErrorCode.GITLAB, message, { retryable });
  }
}

const DEFAULT_TRIES = 3;
const UNAVAILABLE_TRIES = 6;
const MAX_REDIRECTS = 5;

export class ArtifactsApi {
  private readonly time: Time;
  private readonly random: () => number;

  constructor(private readonly opts: ArtifactsApiOptions) {
    this.time = opts.time ?? systemTime;
    this.random = opts.random ?? Math.random;
  }

  /**
   * `POST /jobs/:id/artifacts`. Resolves on 201.
   * @throws ArtifactError (403, 413, or retries used up), TransferError (the body failed).
   */
  async upload(p: UploadParams): Promise<UploadResult> {
    let base = this.opts.baseUrl;
    const query = new URLSearchParams({ artifact_format: p.artifactFormat, artifact_type: p.artifactType });
    if (p.expireIn) query.set('expire_in', p.expireIn);
    for (let attempt = 1; ; attempt++) {
      const stop = new AbortController();
      const body = p.body(p.signal ? AbortSignal.any([p.signal, stop.signal]) : stop.signal);
      let bodyError: unknown;
      body.done.catch((e: unknown) => (bodyError = e ?? new Error('archive failed')));
      const giveUp = async (): Promise<void> => {
        stop.abort();
        body.stream.destroy();
        await body.done.catch(() => undefined);
      };
      const boundary = `runfleet${randomBytes(12).toString('hex')}`;
      const url = `${base}jobs/${p.jobId}/artifacts?${query.toString()}`;
      let res: PostResult;
      try {
        // node:http rather than fetch: a request body that waits for the socket to drain, so a
        // slow GitLab slows the archive down instead of piling it up in memory.
        res = await postStream(
          url,
          {
            'User-Agent': this.opts.userAgent,
            'JOB-TOKEN': p.token,
            'Content-Type': `multipart/form-data; boundary=${boundary}`,
          },
          multipart(boundary, p.filename, body.stream),
          p.signal,
        );
      } catch (e) {
        // The archive failed on the instance: that is the answer, not a network problem.
        if (bodyError !== undefined) throw bodyError;
        await giveUp();
        if (p.signal?.aborted) throw p.signal.reason;
        const why = this.opts.scrub(describe(e));
        if (attempt >= DEFAULT_TRIES) throw new ArtifactError(`upload failed: ${why}`, undefined, true);
        p.onRetry?.(attempt, why);
        await this.time.sleep(this.backoff(attempt), p.signal);
        continue;
      }
      if (res.status === 201) await body.done;
      // Any other reply may come before the body was read whole (413 from a proxy): stop producing it.
      else await giveUp();
      const statusText = `${res.status} ${res.statusText || reasonPhrase(res.status)}`;
      if (res.status === 201) return { status: 201, statusText, attempts: attempt };
      if (res.status === 307) {
        const location = header(res.headers, 'location');
        if (location && attempt < DEFAULT_TRIES) {
          const to = new URL(location, url);
          base = `${to.origin}${new URL(this.opts.baseUrl).pathname}`;
          p.onRetry?.(attempt, `redirected to ${to.origin}`);
          continue;
        }
      }
      if (res.status === 403) throw new ArtifactError(`forbidden (${statusText})`, 403, false);
      if (res.status === 413) throw new ArtifactError(`too large archive (${statusText})`, 413, false);
      const tries = res.status === 503 ? UNAVAILABLE_TRIES : DEFAULT_TRIES;
      if (attempt >= tries) throw new ArtifactError(`upload failed (${statusText})`, res.status, true);
      p.onRetry?.(attempt, statusText);
      await this.time.sleep(this.backoff(attempt), p.signal);
    }
  }

  /**
   * `GET /jobs/:id/artifacts?direct_download=true` (without the parameter when `directDownload`
   * is false) with `token`, following redirects to object storage without the token. Resolves with the 200 body as a stream.
   * @throws ArtifactError: 401/403/404 not retryable; others retryable.
   */
  async download(
    jobId: number,
    token: string,
    signal?: AbortSignal,
    opts: { directDownload?: boolean } = {},
  ): Promise<{ body: Readable; size?: number }> {
    // gitlab-runner asks for direct_download=true, or leaves the parameter out (never `false`).
    const query = (opts.directDownload ?? true) ? '?direct_download=true' : '';
    let url = `${this.opts.baseUrl}jobs/${jobId}/artifacts${query}`;
    const gitlab = new URL(this.opts.baseUrl).origin;
    for (let hop = 0; ; hop++) {
      const toGitlab = new URL(url).origin === gitlab;
      let res: IncomingMessage;
      try {
        // node:http rather than fetch, as for uploads: the body is the socket's own stream,
        // without a WHATWG stream converted back to a Node one chunk by chunk in between
        // (bench/artifacts: the download spools a 1 GiB archive).
        res = await getStream(
          url,
          { 'User-Agent': this.opts.userAgent, ...(toGitlab ? { 'JOB-TOKEN': token } : {}) },
          signal,
        );
      } catch (e) {
        if (signal?.aborted) throw signal.reason;
        throw new ArtifactError(`download failed: ${this.opts.scrub(describe(e))}`, undefined, true);
      }
      const status = res.statusCode ?? 0;
      const statusText = `${status} ${res.statusMessage || reasonPhrase(status)}`;
      if (status === 200) {
        const size = Number(header(res.headers, 'content-length'));
        return { body: res, ...(Number.isFinite(size) && size > 0 ? { size } : {}) };
      }
      res.resume();
      const location = header(res.headers, 'location');
      if ([301, 302, 303, 307, 308].includes(status) && hop < MAX_REDIRECTS && location) {
        url = new URL(location, url).toString();
        continue;
      }
      const final = status === 401 || status === 403 || status === 404;
      throw new ArtifactError(statusText, status, !final);
    }
  }

  private backoff(attempt: number): number {
    const base = Math.min(60_000, 1000 * 2 ** (attempt - 1));
    return Math.round(base / 2 + (base / 2) * this.random());
  }
}

interface PostResult {
  status: number;
  statusText: string;
  headers: IncomingHttpHeaders;
}

/** POSTs `body` chunk by chunk, each written once the socket took the one before. */
function postStream(
  url: string,
  headers: Record<string, string>,
  body: AsyncIterable<Uint8Array>,
  signal?: AbortSignal,
): Promise<PostResult> {
  return new Promise((resolve, reject) => {
    const send = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = send(url, {
      method: 'POST',
      headers: { ...headers, 'Transfer-Encoding': 'chunked' },
      signal,
    });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      res.resume();
      res.on('error', () => undefined);
      res.on('end', () => {
        // An answer before the whole body was sent (413): stop sending it.
        if (!req.writableFinished) req.destroy();
        resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers: res.headers });
      });
    });
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    void (async () => {
      try {
        for await (const chunk of body) {
          if (answered || req.destroyed) return;
          if (!req.write(chunk)) await drainedOrClosed(req);
        }
        req.end();
      } catch (e) {
        req.destroy(e as Error);
      }
    })();
  });
}

/** GETs `url`; resolves with the response (its body unread) once the headers are in. */
function getStream(
  url: string,
  headers: Record<string, string>,
  signal?: AbortSignal,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const send = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = send(url, { method: 'GET', headers, ...(signal ? { signal } : {}) });
    req.on('response', resolve);
    req.on('error', reject);
    req.end();
  });
}

function drainedOrClosed(req: ClientRequest): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      req.off('drain', done);
      req.off('close', done);
      resolve();
    };
    req.once('drain', done);
    req.once('close', done);
  });
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The multipart body: one `file` part around the archive stream, produced as it is sent. */
async function* multipart(boundary: string, filename: string, stream: Readable): AsyncGenerator<Uint8Array> {
  const safe = filename.replace(/["\r\n\\]/g, '_');
  yield Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${safe}"\r\n` +
      `Content-Type: application/octet-stream\r\n\r\n`,
  );
  for await (const chunk of stream) yield chunk as Uint8Array;
  yield Buffer.from(`\r\n--${boundary}--\r\n`);
}

function describe(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  if (cause?.code) return cause.code;
  if (cause?.message) return cause.message;
  return e instanceof Error ? e.message : String(e);
}

function reasonPhrase(status: number): string {
  const phrases: Record<number, string> = {
    200: 'OK',
    201: 'Created',
    302: 'Found',
    307: 'Temporary Redirect',
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    413: 'Request Entity Too Large',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    502: 'Bad Gateway',
    503: 'Service Unavailable',
  };
  return phrases[status] ?? '';
}
