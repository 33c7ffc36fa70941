/**
 * A job's services, as gitlab-runner's docker executor runs them with a network per build
 * (executors/docker/services.go): each service container joins the build's user-defined bridge
 * network under its aliases (the image-derived ones and the job's `alias`), with the job's public
 * variables and its own `variables`, its `entrypoint` and `command`. Then the executor waits for
 * each service to accept a TCP connection on one of its exposed ports (or `HEALTHCHECK_TCP_PORT`),
 * dialing from the instance through the connector instead of from a helper container; a service
 * that does not answer in time gets gitlab-runner's warning with its logs, and the job goes on.
 */
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import type { Connector } from '../connectors/connector.js';
import type { JobService, JobVariable } from '../gitlab/job.js';
import type { Time } from '../../util/time.js';
import { expandWith, splitServiceName, writtenAliases } from './docker-names.js';
import { BuildError, type JobOutput } from './executor.js';

const YELLOW = '\x1b[0;33m';
const GREY = '\x1b[0;37m';
const RESET = '\x1b[0;m';
/** gitlab-runner checks at most this many exposed ports of a service. */
const MAX_PORTS = 20;
/** Service log bytes shown in a warning (gitlab-runner's ServiceLogOutputLimit). */
const LOG_LIMIT = 64 * 1024;

export interface StartedService {
  id: string;
  /** The container name, as gitlab-runner names services in its warnings. */
  name: string;
  aliases: string[];
  ip: string | undefined;
  ports: number[];
}

/** What every service container of a job shares. */
export interface ServiceContext {
  docker: Docker;
  network: string;
  /** Container name prefix, unique per job. */
  prefix: string;
  labels: Record<string, string>;
  /** The job's variables, expanded (runner ones included): for names and service variables. */
  variables: readonly JobVariable[];
  binds: string[];
  privileged: boolean;
  output: JobOutput;
  /** Makes an image available (pull policy, credentials, platform). */
  ensureImage(image: string, service: JobService): Promise<void>;
}

/**
 * The environment of a service container (gitlab-runner `GetServiceVariables`): the job's public
 * variables as they are, then the service's own, expanded against all of the job's and its own.
 */
export function serviceEnv(service: JobService, variables: readonly JobVariable[]): string[] {
  const own = service.variables ?? [];
  const source = [...variables, ...own];
  return [
    ...variables.filter((v) => v.public && !v.file).map((v) => `${v.key}=${v.value}`),
    ...own.map((v) => `${v.key}=${v.raw ? v.value : expandWith(v.value, source)}`),
  ];
}

/** Starts every service of the job on `ctx.network`, in order; throws BuildError for bad names. */
export async function startServices(
  ctx: ServiceContext,
  services: readonly JobService[],
): Promise<StartedService[]> {
  const started: StartedService[] = [];
  const taken = new Set<string>();
  for (const [index, service] of services.entries()) {
    const name = expandWith(service.name, ctx.variables);
    const split = splitServiceName(name);
    if (!split.service) {
      throw new BuildError('runner_configuration_error', `invalid service image name: ${name}`, {
        hint: 'a service image is named like postgres:16 or registry.example.com/group/image:tag',
      });
    }
    const aliases: string[] = [];
    for (const alias of [
      ...split.aliases,
      ...writtenAliases(expandWith(service.alias ?? '', ctx.variables)),
    ]) {
      if (taken.has(alias)) {
        ctx.output.write(
          `${YELLOW}WARNING: Skipping alias "${alias}" for service "${name}" (services[${index}]): alias is already in use by another service.${RESET}\n`,
          'stdout',
        );
        continue;
      }
      if (!aliases.includes(alias)) aliases.push(alias);
    }
    if (aliases.length === 0) continue;
    aliases.forEach((a) => taken.add(a));
    const version = split.version.startsWith('@') ? split.version : `:${split.version}`;
    ctx.output.write(`Starting service ${split.service}${version} ...\n`, 'stdout');
    await ctx.ensureImage(split.image, service);
    started.push(
      await createService(
        ctx,
        service,
        split.image,
        `${ctx.prefix}-${split.service.replaceAll('/', '__')}-${index}`,
        aliases,
      ),
    );
  }
  return started;
}

async function createService(
  ctx: ServiceContext,
  service: JobService,
  image: string,
  name: string,
  aliases: string[],
): Promise<StartedService> {
  const user = service.executor_opts?.docker?.user;
  const platform = service.executor_opts?.docker?.platform;
  const container = await ctx.docker.createContainer({
    _query: { name, ...(platform ? { platform: expandWith(platform, ctx.variables) } : {}) },
    _body: {
      Image: image,
      Labels: { ...ctx.labels, 'io.runfleet.type': 'service', 'io.runfleet.service': image },
      Env: serviceEnv(service, ctx.variables),
      ...(service.command?.length ? { Cmd: service.command } : {}),
      ...(service.entrypoint?.length ? { Entrypoint: service.entrypoint } : {}),
      ...(user !== undefined && user !== '' ? { User: expandWith(String(user), ctx.variables) } : {}),
      HostConfig: {
        NetworkMode: ctx.network,
        RestartPolicy: { Name: 'no' },
        Privileged: ctx.privileged,
        Binds: ctx.binds,
      },
      NetworkingConfig: { EndpointsConfig: { [ctx.network]: { Aliases: aliases } } },
    },
  } as unknown as Docker.ContainerCreateOptions);
  await container.start();
  const info = await container.inspect();
  return {
    id: info.Id,
    name,
    aliases,
    ip: info.NetworkSettings.Networks[ctx.network]?.IPAddress || undefined,
    ports: servicePorts(info),
  };
}

/** `HEALTHCHECK_TCP_PORT` from the container's environment, else its exposed TCP ports (≤ 20). */
export function servicePorts(info: Pick<Docker.ContainerInspectInfo, 'Config'>): number[] {
  for (const e of info.Config.Env ?? []) {
    const eq = e.indexOf('=');
    if (eq > 0 && e.slice(0, eq).toUpperCase() === 'HEALTHCHECK_TCP_PORT') {
      const port = Number(e.slice(eq + 1));
      return Number.isInteger(port) && port > 0 ? [port] : [];
    }
  }
  return Object.keys(info.Config.ExposedPorts ?? {})
    .filter((p) => p.endsWith('/tcp'))
    .map((p) => Number(p.split('/')[0]))
    .filter((p) => Number.isInteger(p) && p > 0)
    .sort((a, b) => a - b)
    .slice(0, MAX_PORTS);
}

/** `p`, or a rejection once `signal` aborts; leaves no listener behind on the signal. */
async function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) throw new Error('timed out');
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    onAbort = () => reject(new Error('timed out'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([p, stop]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

export interface WaitOptions {
  docker: Docker;
  connector: Connector;
  output: JobOutput;
  time: Time;
  /** Seconds; ≤ 0 (gitlab-runner's -1) does not wait. */
  timeoutSeconds: number;
  signal: AbortSignal;
}

/** Waits for every service at once; a service that is not up in time gets the warning block. */
export async function waitForServices(services: readonly StartedService[], opts: WaitOptions): Promise<void> {
  if (opts.timeoutSeconds <= 0 || services.length === 0) return;
  opts.output.write(
    `Waiting for services to be up and running (timeout ${opts.timeoutSeconds} seconds)...\n`,
    'stdout',
  );
  await Promise.all(services.map((s) => waitForService(s, opts)));
}

/** Dials the service's ports until one answers; returns the health check's own log, or undefined if up. */
async function dialUntilUp(
  service: StartedService,
  opts: WaitOptions,
  deadline: AbortSignal,
): Promise<{ error: string; logs?: string } | undefined> {
  const open = opts.connector.openTcpStream?.bind(opts.connector);
  if (!open) return { error: `${opts.connector.description} cannot open TCP connections` };
  if (service.ports.length === 0) return { error: `service "${service.name}" has no exposed ports` };
  if (!service.ip) return { error: `service "${service.name}" has no address on the build network` };
  const ip = service.ip;
  const log = [`waiting for TCP connection to ${ip} on [${service.ports.join(' ')}]...`];
  let last = '';
  while (!deadline.aborted) {
    for (const port of service.ports) {
      try {
        // A dial the network never answers must not outlast the deadline.
        const dial = open(ip, port);
        dial.then(
          (stream) => stream.destroy(),
          () => undefined,
        );
        await raceAbort(dial, deadline);
        return undefined;
      } catch (e) {
        if (deadline.aborted) break;
        last = `dialing ${ip}:${port}: ${(e as Error).message}`;
      }
    }
    await opts.time.sleep(1000, deadline).catch(() => undefined);
  }
  if (last) log.push(last);
  return { error: `service "${service.name}-wait-for-service" timeout`, logs: log.join('\n') };
}

async function waitForService(service: StartedService, opts: WaitOptions): Promise<void> {
  const started = opts.time.now().getTime();
  const timeoutMs = opts.timeoutSeconds * 1000;
  const timeout = new AbortController();
  const timer = opts.time.after(timeoutMs, () => timeout.abort());
  const failed = await dialUntilUp(service, opts, AbortSignal.any([opts.signal, timeout.signal]));
  timer.cancel();
  if (!failed || opts.signal.aborted) return;
  // As gitlab-runner: give a service without ports a moment to log something useful.
  const rest = Math.min(timeoutMs - (opts.time.now().getTime() - started), 10_000);
  if (rest > 0) await opts.time.sleep(rest, opts.signal).catch(() => undefined);
  const lines = [
    '',
    `${YELLOW}*** WARNING:${RESET} Service ${service.name} probably didn't start properly.`,
    '',
    'Health check error:',
    failed.error,
    '',
  ];
  if (failed.logs !== undefined) lines.push('Health check container logs:', failed.logs, '');
  lines.push(
    'Service container logs:',
    await serviceLogs(opts.docker, service.id),
    '',
    `${YELLOW}*********${RESET}`,
    '',
    '',
  );
  opts.output.write(lines.join('\n'), 'stderr');
}

/** The service's output so far (both streams, timestamped, at most 64 KiB), or why not. */
export async function serviceLogs(docker: Docker, id: string): Promise<string> {
  try {
    const raw = (await docker
      .getContainer(id)
      .logs({ stdout: true, stderr: true, timestamps: true, follow: false })) as unknown as Buffer;
    return demuxBuffer(raw).subarray(0, LOG_LIMIT).toString('utf8').trim();
  } catch (e) {
    return (e as Error).message.trim();
  }
}

/** Docker's multiplexed log frames (8-byte header each) to plain bytes; plain input passes. */
function demuxBuffer(buf: Buffer): Buffer {
  const parts: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length && buf[i]! <= 2 && buf[i + 1] === 0 && buf[i + 2] === 0 && buf[i + 3] === 0) {
    const size = buf.readUInt32BE(i + 4);
    parts.push(buf.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  return i === 0 ? buf : Buffer.concat(parts);
}

/**
 * `CI_DEBUG_SERVICES`: follows each service's output into the job log, line by line, as
 * `[service:<aliases>] <timestamp> <line>`. Returns a function that stops following.
 */
export async function followServiceLogs(
  docker: Docker,
  services: readonly StartedService[],
  output: JobOutput,
): Promise<() => void> {
  const streams: NodeJS.ReadableStream[] = [];
  for (const s of services) {
    const stream = (await docker
      .getContainer(s.id)
      .logs({ stdout: true, stderr: true, timestamps: true, follow: true })) as NodeJS.ReadableStream;
    streams.push(stream);
    const prefix = `${GREY}[service:${s.aliases.join('-')}] `;
    let held = '';
    const sink = new PassThrough();
    sink.on('data', (c: Buffer) => {
      const text = held + c.toString('utf8');
      const lines = text.split('\n');
      held = lines.pop() ?? '';
      for (const l of lines) output.write(`${prefix}${l}${RESET}\n`, 'stdout');
    });
    stream.once('end', () => {
      if (held) output.write(`${prefix}${held}${RESET}\n`, 'stdout');
      held = '';
    });
    stream.on('error', () => undefined);
    docker.modem.demuxStream(stream, sink, sink);
  }
  return () => {
    for (const s of streams) (s as unknown as { destroy?: () => void }).destroy?.();
  };
}
