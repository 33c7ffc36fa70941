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

/** Builds root on remote instances; writable by any login user. */
export const REMOTE_BUILDS_DIR = '/tmp/runfleet-builds';

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
): Executor {
  const buildsDir = info.protocol === 'local' ? `${info.workdir}/builds` : REMOTE_BUILDS_DIR;
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
      hostBuildsDir: buildsDir,
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
  return new InstanceExecutor({ connector, buildsDir, concurrentId: slot });
}
