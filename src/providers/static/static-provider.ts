/**
 * The `static` provider: a fixed set of existing SSH machines used as a fleet (on-premises
 * capacity), like GitLab's static fleeting plugin. Every host is an instance, always there:
 * capacity is bounded by the host list, nothing is ever created or destroyed, and `observe`
 * reports the group as fixed-capacity so the planner plans no increase or removal. Unreachable
 * hosts are reported unhealthy, with a warning the plan shows.
 */
import { connect } from 'node:net';
import { parseHostPort } from '../../config/hosts.js';
import { ErrorCode, FleetError } from '../../errors.js';
import type { ConnectorSpec, StaticProviderSpec } from '../../model/fleet.js';
import type { Diagnostic } from '../../model/plan.js';
import type { GroupRef, ObservedGroup } from '../../model/observed.js';
import { systemTime, type Time } from '../../util/time.js';
import { cachedKeyReader } from '../key-file.js';
import type { ConnectInfo, Provider } from '../provider.js';

/** Answers whether an SSH server answers at host:port within the timeout. */
export type HostProbe = (host: string, port: number, timeoutMs: number) => Promise<boolean>;

export interface StaticProviderOptions {
  hosts: StaticProviderSpec['hosts'];
  /** The connector settings of a group's fleet (username, port, key_path). */
  connectorFor: (ref: GroupRef) => ConnectorSpec | undefined;
  /** @default sshBannerProbe */
  probe?: HostProbe;
  /** @default 3000 */
  probeTimeoutMs?: number;
  time?: Time;
  /** Reused for a few seconds (`cachedKeyReader`). @default fs.readFile utf8 */
  readKey?: (path: string) => Promise<string>;
}

/** `host:port`, with the connector's port when the entry names none; the instance id. */
export function staticInstanceIds(hosts: string[], defaultPort: number): string[] {
  return hosts.map((entry) => {
    const hp = parseHostPort(entry);
    if (!hp)
      throw new FleetError(ErrorCode.CONFIG_INVALID, `static host "${entry}" is not host or host:port`);
    const host = hp.host.includes(':') ? `[${hp.host}]` : hp.host;
    return `${host}:${hp.port ?? defaultPort}`;
  });
}

export function createStaticProvider(opts: StaticProviderOptions): Provider {
  const probe = opts.probe ?? sshBannerProbe;
  const timeoutMs = opts.probeTimeoutMs ?? 3000;
  const startedAt = (opts.time ?? systemTime).now().toISOString();
  const readKey = cachedKeyReader(opts.readKey, opts.time);

  const connectorOf = (ref: GroupRef): ConnectorSpec => {
    const connector = opts.connectorFor(ref);
    if (!connector) {
      throw new FleetError(ErrorCode.INTERNAL, `no connector settings known for fleet ${ref.fleet}`);
    }
    return connector;
  };
  // The host list is fixed for the provider's life: parsed once per port, not for every job.
  const idsByPort = new Map<number, string[]>();
  const idsOf = (ref: GroupRef): string[] => {
    const port = connectorOf(ref).port;
    let ids = idsByPort.get(port);
    if (!ids) idsByPort.set(port, (ids = staticInstanceIds(opts.hosts, port)));
    return ids;
  };
  const isReachable = (id: string) => {
    const hp = parseHostPort(id);
    return hp ? probe(hp.host, hp.port ?? 22, timeoutMs) : Promise.resolve(false);
  };

  return {
    type: 'static',

    async observe(refs: GroupRef[]): Promise<ObservedGroup[]> {
      return Promise.all(
        refs.map(async (ref) => {
          const ids = idsOf(ref);
          const reachable = await Promise.all(ids.map(isReachable));
          const down = ids.filter((_, i) => !reachable[i]);
          const diagnostics: Diagnostic[] = down.length
            ? [
                {
                  severity: 'warning',
                  code: 'STATIC_HOST_UNREACHABLE',
                  message: `${down.length} of ${ids.length} static host(s) of fleet "${ref.fleet}" do not answer SSH: ${down.join(', ')}`,
                  hint: 'jobs are not sent to them until they answer; check the host, its sshd and the port',
                },
              ]
            : [];
          return {
            ref,
            exists: true,
            settings: {},
            fixedCapacity: true,
            instances: ids.map((id, i) => ({
              id,
              state: 'running' as const,
              launched_at: startedAt,
              healthy: reachable[i] === true,
              internal_addr: id,
            })),
            diagnostics,
          };
        }),
      );
    },

    // Static hosts exist outside runfleet: there is no group to create, update or delete.
    applyGroup: async () => {},
    deleteGroup: async () => {},

    /** A fixed fleet cannot grow: always 0. */
    increase: async () => 0,

    /** Releasing a host does nothing to it; it stays in the fleet while it is listed. */
    decrease: async (_ref, ids) => ids,

    async connectInfo(ref: GroupRef, id: string): Promise<ConnectInfo> {
      const connector = connectorOf(ref);
      if (!idsOf(ref).includes(id)) {
        throw new FleetError(ErrorCode.PROVIDER, `${id} is not a host of static fleet ${ref.fleet}`);
      }
      const hp = parseHostPort(id) as { host: string; port: number };
      if (!connector.key_path) {
        throw new FleetError(
          ErrorCode.CONFIG_INVALID,
          `static fleet ${ref.fleet} has no connector.key_path`,
          {
            hint: 'static hosts use the credentials you give: set connector.key_path and connector.username',
          },
        );
      }
      let privateKey: string;
      try {
        privateKey = await readKey(connector.key_path);
      } catch (e) {
        throw new FleetError(
          ErrorCode.CONFIG_INVALID,
          `cannot read connector.key_path ${connector.key_path}`,
          {
            hint: 'check that the file exists and is readable by runfleet',
            cause: e,
          },
        );
      }
      return {
        id,
        address: hp.host,
        port: hp.port,
        username: connector.username,
        protocol: 'ssh',
        privateKey,
      };
    },

    heartbeat: async (_ref, id) => isReachable(id),
  };
}

/** Connects and waits for the `SSH-` identification line (RFC 4253 §4.2). */
export const sshBannerProbe: HostProbe = (host, port, timeoutMs) =>
  new Promise((resolve) => {
    const socket = connect({ host, port });
    let seen = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    // An I/O deadline on the socket itself: no banner within `timeoutMs` of silence is a failure.
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString('latin1');
      if (seen.includes('\n')) done(/^SSH-|\nSSH-/.test(seen));
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(/^SSH-/.test(seen)));
  });
