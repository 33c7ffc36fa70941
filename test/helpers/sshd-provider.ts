/**
 * A `Provider` whose instances are real OpenSSH servers on this machine: `increase` starts one
 * sshd per instance on a fresh 127.x.y.z address (never reused, so a replacement never meets the
 * host key pinned for its predecessor), `decrease` stops it, `observe` reports them, a crashed one
 * as running but unhealthy (as an Auto Scaling group reports a failed health check), and
 * `connectInfo` hands out the root key. For integration tests of the daemon and the job runtime;
 * inject it with `startManager(..., { providers: () => provider })`.
 */
import { connect } from 'node:net';
import { ErrorCode, FleetError } from '../../src/errors.js';
import type { GroupRef, ObservedGroup } from '../../src/model/observed.js';
import type { ProviderType } from '../../src/model/fleet.js';
import type { ConnectInfo, Provider } from '../../src/providers/provider.js';
import { startSshd, type SshdInstance, type Teardownable } from './topology/sshd.js';

export interface SshdProviderInstance {
  id: string;
  group: string;
  sshd: SshdInstance;
  launchedAt: string;
}

export interface SshdProvider extends Provider {
  /** Live instances (not yet decreased), oldest first. */
  instances(): SshdProviderInstance[];
  /** Every instance ever started, removed ones included, oldest first. */
  history(): SshdProviderInstance[];
  /** Ids passed to `decrease`, in order. */
  readonly decreased: string[];
}

export interface SshdProviderOptions {
  /** What the provider says it is; the fleet file's `provider.type` must match. @default 'local' */
  type?: ProviderType;
}

/** Whether something accepts TCP connections at host:port within `timeoutMs`. */
export function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export function createSshdProvider(t: Teardownable, opts: SshdProviderOptions = {}): SshdProvider {
  const groups = new Set<string>();
  const live = new Map<string, SshdProviderInstance>();
  const all: SshdProviderInstance[] = [];
  const usedHosts = new Set<string>();
  const decreased: string[] = [];
  let next = 1;

  const freshHost = (): string => {
    for (;;) {
      const b = () => 1 + Math.floor(Math.random() * 253);
      const host = `127.${b()}.${b()}.${b()}`;
      if (!usedHosts.has(host)) {
        usedHosts.add(host);
        return host;
      }
    }
  };
  const find = (ref: GroupRef, id: string): SshdProviderInstance => {
    const inst = live.get(id);
    if (!inst || inst.group !== ref.name) {
      throw new FleetError(ErrorCode.PROVIDER, `sshd instance ${id} of group ${ref.name} does not exist`);
    }
    return inst;
  };

  return {
    type: opts.type ?? 'local',
    decreased,
    instances: () => [...live.values()],
    history: () => [...all],

    async observe(refs): Promise<ObservedGroup[]> {
      return Promise.all(
        refs.map(async (ref) => {
          const mine = [...live.values()].filter((i) => i.group === ref.name);
          const up = await Promise.all(mine.map((i) => portOpen(i.sshd.host, i.sshd.port)));
          return {
            ref,
            exists: groups.has(ref.name),
            settings: {},
            diagnostics: [],
            instances: mine.map((i, n) => ({
              id: i.id,
              state: 'running' as const,
              launched_at: i.launchedAt,
              internal_addr: i.sshd.host,
              healthy: up[n] === true,
            })),
          };
        }),
      );
    },

    async applyGroup(fleet) {
      groups.add(fleet.name);
    },

    async deleteGroup(ref) {
      groups.delete(ref.name);
    },

    async increase(ref, n) {
      for (let i = 0; i < n; i++) {
        const sshd = await startSshd(t, { host: freshHost() });
        const inst = { id: `sshd-${next++}`, group: ref.name, sshd, launchedAt: new Date().toISOString() };
        live.set(inst.id, inst);
        all.push(inst);
      }
      return n;
    },

    async decrease(ref, ids) {
      for (const id of ids) {
        const inst = live.get(id);
        decreased.push(id);
        if (!inst || inst.group !== ref.name) continue;
        live.delete(id);
        await inst.sshd.stop();
      }
      return ids;
    },

    async connectInfo(ref, id): Promise<ConnectInfo> {
      const { sshd } = find(ref, id);
      return {
        id,
        address: sshd.host,
        port: sshd.port,
        username: sshd.username,
        protocol: 'ssh',
        privateKey: sshd.privateKey,
      };
    },

    async heartbeat(ref, id) {
      const inst = live.get(id);
      return inst !== undefined && inst.group === ref.name && portOpen(inst.sshd.host, inst.sshd.port);
    },
  };
}
