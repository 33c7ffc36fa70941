/**
 * Docker through a connector: dockerode speaks HTTP to the instance's Docker socket over a
 * stream the connector opens (SSH stream-local forwarding, or a local socket), one stream per
 * request, so the daemon is never exposed on the network. Also the image pull policy.
 */
import { Agent } from 'node:http';
import type { Duplex } from 'node:stream';
import Docker from 'dockerode';
import type { PullPolicy } from '../../model/fleet.js';
import type { Connector } from '../connectors/connector.js';
import type { RegistryEntry } from './docker-auth.js';
import { BuildError, type JobOutput } from './executor.js';

/** Labels on every container and network runfleet creates, so leftovers can be found and removed. */
export const MANAGED_LABEL = 'io.runfleet.managed';
export const JOB_LABEL = 'io.runfleet.job-id';
/** The slot (`CI_CONCURRENT_ID`) of the job on its instance: the next job in it sweeps leftovers. */
export const SLOT_LABEL = 'io.runfleet.slot';
/** The instance (provider id) the job ran on: instances may share one daemon (`local`). */
export const INSTANCE_LABEL = 'io.runfleet.instance';
/** `build` or `service`. */
export const TYPE_LABEL = 'io.runfleet.type';

/** How one image is pulled: the registry credentials for it and the platform. */
export interface PullOptions {
  auth?: RegistryEntry;
  /** `linux/arm64`; the daemon's own platform when unset. */
  platform?: string;
}

/**
 * A dockerode client whose every connection is `connector.openUnixStream(socketPath)`. The HTTP
 * host name is a placeholder that is never resolved (gitlab-runner uses `internal.tunnel.invalid`).
 */
export function dockerThroughConnector(connector: Connector, socketPath: string): Docker {
  const open = connector.openUnixStream?.bind(connector);
  if (!open) throw new Error(`${connector.description} cannot open Unix sockets`);
  // No keep-alive: a pooled socket would be an SSH channel held open between requests.
  const agent = new Agent({ keepAlive: false });
  const createConnection = (
    _options: unknown,
    callback: (err: Error | null, stream?: Duplex) => void,
  ): undefined => {
    open(socketPath).then(
      (stream) => callback(null, stream),
      (err: Error) => callback(err),
    );
    return undefined;
  };
  (agent as unknown as { createConnection: typeof createConnection }).createConnection = createConnection;
  return new Docker({
    protocol: 'http',
    host: 'internal.tunnel.invalid',
    port: 80,
    agent,
  } as Docker.DockerOptions);
}

async function imagePresent(docker: Docker, image: string): Promise<boolean> {
  try {
    await docker.getImage(image).inspect();
    return true;
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode === 404) return false;
    throw e;
  }
}

async function pull(docker: Docker, image: string, opts: PullOptions, signal: AbortSignal): Promise<void> {
  const stream = (await docker.pull(image, {
    abortSignal: signal,
    ...(opts.platform ? { platform: opts.platform } : {}),
    ...(opts.auth ? { authconfig: opts.auth.auth } : {}),
  })) as NodeJS.ReadableStream;
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve()));
  });
}

/**
 * Makes `image` available by trying each pull policy in order, as GitLab does: `never` uses only
 * a local image, `if-not-present` pulls when there is none, `always` pulls. When no policy
 * succeeds the job fails with `image_pull_failure` and a message naming the image.
 */
export async function ensureImage(
  docker: Docker,
  image: string,
  policies: PullPolicy[],
  output: JobOutput,
  signal: AbortSignal,
  opts: PullOptions = {},
): Promise<void> {
  const tried: string[] = [];
  const platform = opts.platform ? ` for platform ${opts.platform}` : '';
  for (const policy of policies.length > 0 ? policies : (['always'] as PullPolicy[])) {
    if (policy !== 'always' && (await imagePresent(docker, image))) {
      output.write(`Using locally found image ${image} (pull policy ${policy})\n`, 'stdout');
      return;
    }
    if (policy === 'never') {
      tried.push('never: image not present on the instance');
      continue;
    }
    if (opts.auth) output.write(`Authenticating with credentials from ${opts.auth.source}\n`, 'stdout');
    output.write(`Pulling docker image ${image}${platform} (pull policy ${policy}) ...\n`, 'stdout');
    try {
      await pull(docker, image, opts, signal);
      return;
    } catch (e) {
      if (signal.aborted) throw e;
      tried.push(`${policy}: ${(e as Error).message.trim()}`);
      output.write(
        `WARNING: Failed to pull image ${image} with policy ${policy}: ${(e as Error).message.trim()}\n`,
        'stdout',
      );
    }
  }
  throw new BuildError(
    'image_pull_failure',
    `failed to pull image "${image}" with specified policies [${policies.join(' ')}]: ${tried.join('; ')}`,
    { hint: 'check the image name, that the instance can reach its registry, and the pull policy' },
  );
}

/** Which runfleet objects to remove: one job's, every job's in a slot but one, or all. */
export type Leftovers = { jobId: number } | { instance: string; slot: number; exceptJob: number } | 'all';

function leftoverLabel(which: Leftovers): string[] {
  if (which === 'all') return [`${MANAGED_LABEL}=true`];
  if ('jobId' in which) return [`${JOB_LABEL}=${which.jobId}`];
  return [`${MANAGED_LABEL}=true`, `${INSTANCE_LABEL}=${which.instance}`, `${SLOT_LABEL}=${which.slot}`];
}

/**
 * Force-removes runfleet's containers (with their anonymous volumes), then its networks: a job's
 * own at its end, or what crashed jobs left in a slot when the next job takes it. Returns how
 * many containers and networks went.
 */
export async function removeLeftovers(docker: Docker, which: Leftovers): Promise<number> {
  const label = leftoverLabel(which);
  const keep = (labels: Record<string, string> | undefined) =>
    typeof which === 'object' && 'exceptJob' in which && labels?.[JOB_LABEL] === String(which.exceptJob);
  const containers = (await docker.listContainers({ all: true, filters: { label } })).filter(
    (c) => !keep(c.Labels),
  );
  await Promise.all(
    containers.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch(() => undefined),
    ),
  );
  const networks = (await docker.listNetworks({ filters: { label } })).filter((n) => !keep(n.Labels));
  await Promise.all(
    networks.map((n) =>
      docker
        .getNetwork(n.Id)
        .remove()
        .catch(() => undefined),
    ),
  );
  return containers.length + networks.length;
}

/** Force-removes every runfleet container of `jobId` (or of any job) on the daemon. */
export async function removeJobContainers(docker: Docker, jobId?: number): Promise<number> {
  return removeLeftovers(docker, jobId === undefined ? 'all' : { jobId });
}
