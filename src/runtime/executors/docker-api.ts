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
import { BuildError, type JobOutput } from './executor.js';

/** Labels on every container runfleet creates, so leftovers can be found and removed. */
export const MANAGED_LABEL = 'io.runfleet.managed';
export const JOB_LABEL = 'io.runfleet.job-id';

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

async function pull(docker: Docker, image: string, signal: AbortSignal): Promise<void> {
  const stream = (await docker.pull(image, { abortSignal: signal })) as NodeJS.ReadableStream;
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
): Promise<void> {
  const tried: string[] = [];
  for (const policy of policies.length > 0 ? policies : (['always'] as PullPolicy[])) {
    if (policy !== 'always' && (await imagePresent(docker, image))) {
      output.write(`Using locally found image ${image} (pull policy ${policy})\n`, 'stdout');
      return;
    }
    if (policy === 'never') {
      tried.push('never: image not present on the instance');
      continue;
    }
    output.write(`Pulling docker image ${image} (pull policy ${policy}) ...\n`, 'stdout');
    try {
      await pull(docker, image, signal);
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

/** Force-removes every runfleet container of `jobId` (or of any job) on the daemon. */
export async function removeJobContainers(docker: Docker, jobId?: number): Promise<number> {
  const label = jobId === undefined ? [`${MANAGED_LABEL}=true`] : [`${JOB_LABEL}=${jobId}`];
  const containers = await docker.listContainers({ all: true, filters: { label } });
  await Promise.all(
    containers.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch(() => undefined),
    ),
  );
  return containers.length;
}
