/**
 * Picks the connector and executor for a job on one instance: `local` instances run jobs as local
 * processes in their sandbox, the others over SSH (pooled per instance); `docker` fleets run the
 * job's stages in containers on the instance's Docker daemon, reached through that SSH connection.
 */
import { ErrorCode, FleetError } from '../errors.js';
import type { Fleet } from '../model/fleet.js';
import type { ConnectInfo } from '../providers/provider.js';
import type { Connector } from './connectors/connector.js';
import { LocalConnector } from './connectors/local-connector.js';
import type { SshConnectorPool } from './connectors/ssh-connector.js';
import { DockerExecutor } from './executors/docker-executor.js';
import type { Executor } from './executors/executor.js';
import { InstanceExecutor } from './executors/instance-executor.js';
import type { Time } from '../util/time.js';
import { runnerSegment } from './script/layout.js';

/**
 * Builds root on remote instances; writable by any login user. Each runner (fleet token) has its
 * own directory under it (`remoteRunnerBuildsDir`), so two fleets on one host never share a
 * project directory.
 */
export const REMOTE_BUILDS_DIR = '/tmp/runfleet-builds';

/** Where the docker executor of the runner with `shortToken` keeps its builds on an instance. */
export const remoteRunnerBuildsDir = (shortToken: string): string =>
  `${REMOTE_BUILDS_DIR}/${runnerSegment(shortToken)}`;

/** `maxSessions`: the fleet's `connector.max_sessions`, when it sets one. */
export function connectorFor(info: ConnectInfo, ssh: SshConnectorPool, maxSessions?: number): Connector {
  if (info.protocol === 'local') {
    if (!info.workdir) throw new FleetError(ErrorCode.INTERNAL, `local instance ${info.id} has no workdir`);
    return new LocalConnector({ workdir: info.workdir, time: ssh.time });
  }
  if (!info.privateKey) {
    throw new FleetError(ErrorCode.CONFIG_INVALID, `no SSH credentials for instance ${info.id}`, {
      hint: 'set connector.key_path (with use_static_credentials: true) or use a provider that provisions keys',
    });
  }
  return ssh.get({
    host: info.address,
    port: info.port,
    username: info.username,
    privateKey: info.privateKey,
    pinAs: `${info.id}@${info.address}:${info.port}`,
    ...(maxSessions ? { maxSessions } : {}),
  });
}

export function executorFor(
  fleet: Fleet,
  info: ConnectInfo,
  connector: Connector,
  slot: number,
  time: Time,
  /** The runner's short token (CI_RUNNER_SHORT_TOKEN): its directory on shared builds roots. */
  shortToken: string,
): Executor {
  const local = info.protocol === 'local';
  const buildsDir = local ? `${info.workdir}/builds` : REMOTE_BUILDS_DIR;
  if (fleet.executor === 'docker') {
    const docker = fleet.docker;
    if (!docker)
      throw new FleetError(
        ErrorCode.CONFIG_INVALID,
        `fleet ${fleet.name} uses the docker executor without a docker block`,
      );
    return new DockerExecutor({
      connector,
      socketPath: docker.host.replace(/^unix:\/\//, ''),
      // Mounted at /builds: the container sees its own runner's projects only.
      hostBuildsDir: local ? buildsDir : remoteRunnerBuildsDir(shortToken),
      defaultImage: docker.image,
      pullPolicy: docker.pull_policy,
      privileged: docker.privileged,
      volumes: docker.volumes,
      waitForServicesTimeout: docker.wait_for_services_timeout,
      ...(docker.auth_config ? { authConfig: docker.auth_config } : {}),
      ...(docker.config_file ? { configFile: docker.config_file } : {}),
      concurrentId: slot,
      instanceId: info.id,
      time,
    });
  }
  // A sandbox is the fleet's own; an instance's builds root may be shared with other runners.
  return new InstanceExecutor({
    connector,
    buildsDir,
    concurrentId: slot,
    ...(local ? {} : { runnerDir: shortToken }),
  });
}
