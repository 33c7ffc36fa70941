/**
 * The daemon's HTTP endpoint, loopback by default (127.0.0.1:9252):
 *   GET  /metrics                      Prometheus text
 *   GET  /healthz                      200 {"state":"running"} while running, else 503
 *   GET  /v1/status                    the status report (`runfleet status` reads it)
 *   POST /v1/fleets/:name/demand       {"jobs":N,"duration_ms":M}: synthetic jobs through the scheduler
 *   POST /v1/fleets/:name/approve      apply a manual fleet's file definition once
 * Bodies are JSON; errors are {"error": message}.
 *
 * The server is bound before the daemon starts (`bindDaemonServer`, then `attach`): a port that is
 * taken must fail `watch` before it takes the lock or creates an instance. Until attached, every
 * route answers 503 {"state":"starting"}.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode, FleetError, asError, isFleetError } from '../errors.js';
import type { Daemon } from './daemon.js';
import { startSyntheticJobs } from './synthetic-jobs.js';
import type { Logger } from '../util/logger.js';
import type { Time } from '../util/time.js';

export const DEFAULT_LISTEN = '127.0.0.1:9252';

export interface DaemonServer {
  /** `host:port` actually bound (port 0 picks a free one). */
  address: string;
  /** Starts serving the daemon's routes (synthetic jobs run on `deps.time`). */
  attach(daemon: Daemon, deps: { time: Time; logger: Logger }): void;
  close(): Promise<void>;
}

/**
 * Parses `host:port` (`:9252` means 127.0.0.1).
 * @throws FleetError(USAGE) when it is not one.
 */
export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const host = i > 0 ? listen.slice(0, i).replace(/^\[|\]$/g, '') : '127.0.0.1';
  const port = Number(i >= 0 ? listen.slice(i + 1) : listen);
  if (!Number.isInteger(port) || port < 0 || port > 65535 || (i >= 0 && listen.slice(i + 1) === '')) {
    throw new FleetError(ErrorCode.USAGE, `invalid --listen address ${listen}`, {
      hint: 'use HOST:PORT (e.g. 127.0.0.1:9252), :PORT, or port 0 for any free port',
    });
  }
  return { host, port };
}

/**
 * Binds the HTTP server; routes answer 503 until `attach`.
 * @throws FleetError(USAGE) when the address is taken, invalid, or not this host's.
 */
export async function bindDaemonServer(listen: string): Promise<DaemonServer> {
  let attached: { daemon: Daemon; deps: { time: Time; logger: Logger } } | undefined;
  const server = createServer((req, res) => {
    if (!attached) return send(res, 503, { state: 'starting' });
    route(attached.daemon, attached.deps, req, res).catch((e: unknown) =>
      send(res, 500, { error: asError(e).message }),
    );
  });
  const { host, port } = parseListen(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(listenError(listen, e)));
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    address: `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
    attach: (daemon, deps) => (attached = { daemon, deps }),
    close: () => closeServer(server),
  };
}

function listenError(listen: string, e: NodeJS.ErrnoException): FleetError {
  const why =
    e.code === 'EADDRINUSE'
      ? 'the address is already in use'
      : e.code === 'EADDRNOTAVAIL'
        ? 'no interface of this host has that address'
        : e.code === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges)'
          : e.message;
  return new FleetError(ErrorCode.USAGE, `cannot listen on ${listen}: ${why}`, {
    hint: 'another runfleet watch or program may hold it; pick another with --listen HOST:PORT (port 0: any free one)',
    cause: e,
  });
}

async function route(
  daemon: Daemon,
  deps: { time: Time; logger: Logger },
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname;
  if (req.method === 'GET' && path === '/metrics') {
    const text = await daemon.metricsText();
    res.writeHead(200, { 'content-type': daemon.metrics.contentType });
    res.end(text);
    return;
  }
  if (req.method === 'GET' && path === '/healthz') {
    send(res, daemon.state === 'running' ? 200 : 503, { state: daemon.state });
    return;
  }
  if (req.method === 'GET' && path === '/v1/status') {
    send(res, 200, await daemon.status());
    return;
  }
  const m = /^\/v1\/fleets\/([a-z0-9][a-z0-9-]*)\/(demand|approve)$/.exec(path);
  if (req.method === 'POST' && m) {
    const fleet = m[1] as string;
    if (m[2] === 'approve') {
      try {
        daemon.approve(fleet);
      } catch (e) {
        send(res, isFleetError(e) ? 404 : 500, { error: asError(e).message });
        return;
      }
      send(res, 202, { approved: fleet });
      return;
    }
    const body = (await readJson(req)) as { jobs?: unknown; duration_ms?: unknown; break_instance?: unknown };
    const jobs = Number(body.jobs ?? 1);
    const durationMs = Number(body.duration_ms ?? 1000);
    if (
      !Number.isInteger(jobs) ||
      jobs < 0 ||
      jobs > 10_000 ||
      !Number.isFinite(durationMs) ||
      durationMs < 0
    ) {
      send(res, 400, { error: 'jobs must be 0..10000 and duration_ms >= 0' });
      return;
    }
    if (daemon.state !== 'running') {
      send(res, 503, { error: `daemon is ${daemon.state}` });
      return;
    }
    startSyntheticJobs(daemon.slots, deps.time, deps.logger, fleet, {
      jobs,
      durationMs,
      breakInstance: body.break_instance === true,
    });
    send(res, 202, { fleet, jobs, duration_ms: durationMs });
    return;
  }
  send(res, 404, { error: `no route ${req.method} ${path}` });
}

function send(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body)}\n`);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > 65_536) throw new Error('request body too large');
  }
  if (text.trim() === '') return {};
  return JSON.parse(text) as unknown;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
