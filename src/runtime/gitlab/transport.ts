/**
 * HTTP to GitLab's `/api/v4/`: base URL, common headers, and GitLab Runner's transport retry
 * (`R:network/retry_requester.go`, docs/gitlab-job-api.md §0). Knows nothing about jobs; `client.ts` builds on it.
 *
 * Requests go over keep-alive connections of an undici `Pool` (Node's own HTTP client project,
 * its `request()` API; GitLab Runner reuses its connections too): `fetch` cost several times more
 * CPU per request (web streams, abort-signal plumbing, a new connection per burst), and
 * `node:http` about a third more than undici's `request()` (README "Manager CPU per job"); HTTP to
 * GitLab was the largest share of the manager's CPU per job in bench/dispatch. A `fetch` can still
 * be injected (tests).
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode, FleetError } from '../../errors.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import { systemTime, type Time } from '../../util/time.js';
import { Pool } from 'undici';

/**
 * The API base for a configured GitLab URL (§0): strip a trailing `/` and `/ci`, append `/api/v4/`.
 * @throws FleetError(CONFIG_INVALID) for anything but an http(s) URL.
 */
export function apiBaseUrl(configured: string): string {
  let url: URL;
  try {
    url = new URL(configured.trim());
  } catch {
    throw new FleetError(ErrorCode.CONFIG_INVALID, `GitLab URL ${JSON.stringify(configured)} is not a URL`, {
      hint: 'write the GitLab base URL, e.g. https://gitlab.example.com',
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FleetError(ErrorCode.CONFIG_INVALID, `GitLab URL must be http or https, not ${url.protocol}`, {
      hint: 'write the GitLab base URL, e.g. https://gitlab.example.com',
    });
  }
  url.search = '';
  url.hash = '';
  let path = url.pathname.replace(/\/+$/, '');
  if (path.endsWith('/ci')) path = path.slice(0, -3);
  url.pathname = path.replace(/\/+$/, '') + '/api/v4/';
  return url.toString();
}

/** Statuses the transport retries (§0): 408, 429, 500, 502, 503, 504 and anything ≥ 512. */
export function isRetriedStatus(status: number): boolean {
  return (
    status === 408 || status === 429 || (status >= 500 && status <= 504 && status !== 501) || status >= 512
  );
}

export const MAX_ATTEMPTS = 5;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 60_000;

export interface TransportOptions {
  baseUrl: string;
  userAgent: string;
  /** Every secret this transport may carry; scrubbed from any error message it builds. */
  secrets: () => readonly string[];
  fetch?: typeof fetch;
  /** In [0, 1); jitters the backoff. */
  random?: () => number;
  /** Backoff sleeps, and the time `RateLimit-ResetTime` is read against. @default systemTime */
  time?: Time;
  /** @default silentLogger */
  log?: Logger;
  /** Told each attempt's status (-100: network failure) for requests that name an `endpoint`. */
  onApiRequest?: (endpoint: ApiEndpoint, status: number) => void;
}

/** The endpoints GitLab Runner measures in `gitlab_runner_api_request_statuses_total`. */
export type ApiEndpoint = 'request_job' | 'update_job' | 'patch_trace';

/** GitLab Runner's status label for a request that got no HTTP answer. */
export const CLIENT_ERROR_STATUS = -100;

export interface ApiRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Relative to the API base, e.g. `jobs/request`. */
  path: string;
  /** Counts each attempt under this endpoint (see `TransportOptions.onApiRequest`). */
  endpoint?: ApiEndpoint;
  headers?: Record<string, string>;
  /** Objects are sent as JSON; bytes as they are. */
  json?: unknown;
  /** A JSON body already serialized, sent as `json` would be. */
  jsonText?: string;
  body?: Uint8Array;
  /** Whether a JSON body is expected back (adds `Accept: application/json`). */
  expectJson?: boolean;
  signal?: AbortSignal;
  /** Per attempt. */
  timeoutMs: number;
}

/** Response headers, looked up case-insensitively (the part of `Headers` the client uses). */
export interface ResponseHeaders {
  get(name: string): string | null;
}

export interface ApiResponse {
  status: number;
  headers: ResponseHeaders;
  text: string;
  /** 1 to MAX_ATTEMPTS. */
  attempts: number;
}

export class Transport {
  private readonly fetch: typeof fetch | undefined;
  private readonly random: () => number;
  private readonly time: Time;
  private pool: Pool | undefined;
  private base: URL | undefined;
  readonly log: Logger;

  constructor(private readonly opts: TransportOptions) {
    this.fetch = opts.fetch;
    this.random = opts.random ?? Math.random;
    this.time = opts.time ?? systemTime;
    this.log = opts.log ?? silentLogger;
  }

  /**
   * Sends a request, retrying retried statuses up to MAX_ATTEMPTS with the server's wait or
   * jittered exponential backoff. Resolves with the last reply whatever its status.
   * @throws FleetError(GITLAB, retryable) on network errors and timeouts; the caller's abort
   *   reason when `signal` aborts.
   */
  async send(req: ApiRequest): Promise<ApiResponse> {
    const url = this.opts.baseUrl + req.path;
    const headers: Record<string, string> = {
      'User-Agent': this.opts.userAgent,
      ...req.headers,
    };
    let body: string | Uint8Array | undefined = req.body;
    if (req.json !== undefined || req.jsonText !== undefined) {
      body = req.jsonText ?? JSON.stringify(req.json);
      headers['Content-Type'] = 'application/json';
    }
    if (req.expectJson) headers['Accept'] = 'application/json';

    for (let attempt = 1; ; attempt++) {
      // A fresh id per attempt, as GitLab's logs key requests by it: 32 random hex digits (a UUID's
      // 122 random bits; randomUUID draws from a buffered pool, a syscall per request less).
      headers['X-Request-Id'] = randomUUID().replaceAll('-', '');
      const res = await this.measured(req, url, headers, body);
      if (!isRetriedStatus(res.status) || attempt >= MAX_ATTEMPTS) return { ...res, attempts: attempt };
      const waitMs = this.retryWait(res.headers, attempt);
      this.log.debug('GitLab asked to retry', {
        method: req.method,
        path: pathOnly(req.path),
        status: res.status,
        attempt,
        waitMs,
      });
      await this.time.sleep(waitMs, req.signal);
    }
  }

  private async measured(
    req: ApiRequest,
    url: string,
    headers: Record<string, string>,
    body: string | Uint8Array | undefined,
  ): Promise<Omit<ApiResponse, 'attempts'>> {
    const observe = req.endpoint && this.opts.onApiRequest;
    if (!observe) return this.once(req, url, headers, body);
    try {
      const res = await this.once(req, url, headers, body);
      observe(req.endpoint!, res.status);
      return res;
    } catch (e) {
      if (!req.signal?.aborted) observe(req.endpoint!, CLIENT_ERROR_STATUS);
      throw e;
    }
  }

  /** Closes idle keep-alive connections (in-flight requests finish). */
  close(): void {
    // undici's close lets queued and running requests finish, then ends the connections.
    void this.pool?.close().catch(() => undefined);
    this.pool = undefined;
  }

  private once(
    req: ApiRequest,
    url: string,
    headers: Record<string, string>,
    body: string | Uint8Array | undefined,
  ): Promise<Omit<ApiResponse, 'attempts'>> {
    return this.fetch
      ? this.viaFetch(this.fetch, req, url, headers, body)
      : this.viaHttp(req, url, headers, body);
  }

  private viaHttp(
    req: ApiRequest,
    url: string,
    headers: Record<string, string>,
    body: string | Uint8Array | undefined,
  ): Promise<Omit<ApiResponse, 'attempts'>> {
    if (req.signal?.aborted) return Promise.reject(req.signal.reason);
    // The base URL is parsed once; each request only appends its path (and query) to it.
    const base = (this.base ??= new URL(this.opts.baseUrl));
    this.pool ??= new Pool(base.origin, POOL_OPTIONS);
    const pool = this.pool;
    // One abort per attempt, by the caller's signal or by the attempt's timeout. undici hands the
    // abort function over when the request gets a connection; an abort before that is kept.
    let abortRequest: ((reason: Error) => void) | undefined;
    let abortReason: Error | undefined;
    let timedOut = false;
    const abort = (reason: Error): void => {
      abortReason ??= reason;
      abortRequest?.(reason);
    };
    const onAbort = () => abort(new Error('aborted'));
    const timer = setTimeout(() => {
      timedOut = true;
      abort(new Error('timed out'));
    }, req.timeoutMs);
    req.signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = () => {
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
    };
    // `dispatch` with a handler of callbacks: undici's `request()` is this plus a body stream and
    // its promise plumbing per request, which the small JSON replies here do not need.
    const exchange = new Promise<Omit<ApiResponse, 'attempts'>>((resolve, reject) => {
      let status = 0;
      let raw: Buffer[] = [];
      const chunks: Buffer[] = [];
      pool.dispatch(
        { method: req.method, path: url.slice(base.origin.length), headers, body: body ?? null },
        {
          onConnect: (abortFn: (reason: Error) => void) => {
            if (abortReason) abortFn(abortReason);
            else abortRequest = abortFn;
          },
          onHeaders: (statusCode: number, rawHeaders: Buffer[]) => {
            status = statusCode;
            raw = rawHeaders;
            return true;
          },
          onData: (chunk: Buffer) => {
            chunks.push(chunk);
            return true;
          },
          onComplete: () => {
            const text =
              chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
            resolve({ status, headers: rawHeaderLookup(raw), text });
          },
          onError: reject,
        },
      );
    });
    return exchange.then(
      (res) => {
        cleanup();
        return res;
      },
      (e: unknown) => {
        cleanup();
        if (req.signal?.aborted) throw req.signal.reason;
        const what = timedOut ? `timed out after ${req.timeoutMs} ms` : `failed: ${describeNetworkError(e)}`;
        throw new FleetError(ErrorCode.GITLAB, this.scrub(`${req.method} ${pathOnly(req.path)} ${what}`), {
          retryable: true,
          hint: 'check that the GitLab URL is reachable from this host',
        });
      },
    );
  }

  private async viaFetch(
    fetchFn: typeof fetch,
    req: ApiRequest,
    url: string,
    headers: Record<string, string>,
    body: string | Uint8Array | undefined,
  ): Promise<Omit<ApiResponse, 'attempts'>> {
    const timeout = AbortSignal.timeout(req.timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    try {
      // Uint8Array<ArrayBufferLike> is a valid body at runtime; the DOM typings want ArrayBuffer-backed views.
      const res = await fetchFn(url, {
        method: req.method,
        headers,
        body: body as BodyInit | undefined,
        signal,
      });
      const text = await res.text();
      return { status: res.status, headers: res.headers, text };
    } catch (e) {
      if (req.signal?.aborted) throw req.signal.reason;
      const what = timeout.aborted
        ? `timed out after ${req.timeoutMs} ms`
        : `failed: ${describeNetworkError(e)}`;
      throw new FleetError(ErrorCode.GITLAB, this.scrub(`${req.method} ${pathOnly(req.path)} ${what}`), {
        retryable: true,
        hint: 'check that the GitLab URL is reachable from this host',
      });
    }
  }

  /** `RateLimit-ResetTime` (RFC 1123), else `Retry-After` (seconds), else backoff with jitter. */
  retryWait(headers: ResponseHeaders, attempt: number): number {
    const reset = headers.get('ratelimit-resettime');
    if (reset) {
      const at = Date.parse(reset);
      if (!Number.isNaN(at)) return Math.max(0, at - this.time.now().getTime());
    }
    const retryAfter = headers.get('retry-after');
    if (retryAfter && /^\d+$/.test(retryAfter.trim())) return Number(retryAfter.trim()) * 1000;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (attempt - 1));
    // Full range between half and the whole step: spreads runners that failed together.
    return Math.round(base / 2 + (base / 2) * this.random());
  }

  /** Replaces every known secret in `text`; used on everything that may reach a log or an error. */
  scrub(text: string): string {
    let out = text;
    for (const secret of this.opts.secrets()) {
      if (secret) out = out.split(secret).join('[MASKED]');
    }
    return out;
  }
}

/**
 * One pool per transport, to the GitLab origin (https verifies against Node's CA store, plus
 * NODE_EXTRA_CA_CERTS, as `tls.connect` does). The transport times each attempt itself, so
 * undici's own connect/headers/body timeouts are off; idle connections stay open a minute unless
 * the server's `Keep-Alive: timeout=` says less (undici's 4 s default would reconnect between
 * job polls).
 */
const POOL_OPTIONS: Pool.Options = {
  connect: { timeout: 0 },
  headersTimeout: 0,
  bodyTimeout: 0,
  keepAliveTimeout: 60_000,
};

/** The path without its query string: queries may carry tokens on some endpoints. */
function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

/**
 * `Headers`-style lookup over undici's raw headers (name, value, name, value …); repeated ones
 * joined with `, `. Decoded on the first lookup: most replies are read for one or two headers.
 */
function rawHeaderLookup(raw: Buffer[]): ResponseHeaders {
  let byName: Map<string, string> | undefined;
  return {
    get: (name: string) => {
      if (!byName) {
        byName = new Map();
        for (let i = 0; i + 1 < raw.length; i += 2) {
          const key = raw[i]!.toString('latin1').toLowerCase();
          const value = raw[i + 1]!.toString('utf8');
          const seen = byName.get(key);
          byName.set(key, seen === undefined ? value : `${seen}, ${value}`);
        }
      }
      return byName.get(name.toLowerCase()) ?? null;
    },
  };
}

function describeNetworkError(e: unknown): string {
  const code = (e as { code?: unknown } | undefined)?.code;
  // undici's "other side closed": the connection ended before the reply did, which Node (and
  // the callers' classification) calls ECONNRESET ("socket hang up").
  if (code === 'UND_ERR_SOCKET') return 'ECONNRESET';
  if (typeof code === 'string') return code;
  const cause = (e as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  if (cause?.code) return cause.code;
  if (cause?.message) return cause.message;
  return e instanceof Error ? e.message : String(e);
}
