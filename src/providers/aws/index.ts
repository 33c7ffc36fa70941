/**
 * The AWS provider: fleets backed by EC2 Auto Scaling groups, observed and changed through the SDK
 * v3 clients. One provider instance serves every fleet with the same region/profile/endpoint
 * (`awsClientKey`), so `observe` batches all of their groups into one call set.
 */
import { ErrorCode, FleetError } from '../../errors.js';
import type { ConnectorSpec, Fleet } from '../../model/fleet.js';
import type { GroupRef, ObservedGroup } from '../../model/observed.js';
import { systemTime, type Time } from '../../util/time.js';
import { cachedKeyReader } from '../key-file.js';
import type { ConnectInfo, Provider } from '../provider.js';
import { decreaseAwsGroup, heartbeatAwsInstance, increaseAwsGroup } from './capacity.js';
import { createAwsClients, type AwsClientOptions, type AwsClients } from './clients.js';
import { awsConnectInfo, type ReadKeyFile } from './connect.js';
import type { AwsContext } from './context.js';
import { applyAwsGroup, deleteAwsGroup } from './group.js';
import { discoverGroups, observeGroups } from './observe.js';
import { diffAwsGroup } from './group-settings.js';
import type { GroupDiff } from '../../model/settings-diff.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, type Sleep } from './retry.js';
import { EphemeralSshKey } from './ssh-key.js';

export { awsClientKey, createAwsClients, type AwsClients, type AwsClientOptions } from './clients.js';
export { toFleetError, classifyAwsError, type AwsService } from './errors.js';
export { EphemeralSshKey } from './ssh-key.js';
export { DEFAULT_RETRY_POLICY, type RetryPolicy, type Sleep } from './retry.js';

export interface AwsProviderOptions extends AwsClientOptions {
  /** Pre-built clients (tests inject mocked real clients); missing ones are built from the options. */
  clients?: Partial<AwsClients>;
  /** @default systemTime */
  time?: Time;
  /** Backoff sleep (tests record it). @default `time.sleep` */
  sleep?: Sleep;
  /** Jitter source in [0, 1). @default Math.random */
  random?: () => number;
  /** @default DEFAULT_RETRY_POLICY (5 attempts, 200 ms base, 10 s cap) */
  retry?: Partial<RetryPolicy>;
  /**
   * This manager's id. Groups are tagged `runfleet:manager=<id>` and groups tagged for another id
   * are refused. Unset: no manager tag is written or checked.
   */
  manager?: string;
  /**
   * The connector settings of a group's fleet, for `connectInfo` (which only receives a GroupRef).
   * Falls back to the connector of the last fleet passed to `applyGroup` in this process.
   */
  connectorFor?: (ref: GroupRef) => ConnectorSpec | undefined;
  /** Reads a static key file (`use_static_credentials`). @default fs.readFile as utf8 */
  readKey?: ReadKeyFile;
  /** The ephemeral Instance Connect key; shared by providers of one manager. @default generated on first use */
  sshKey?: EphemeralSshKey;
  /** How long scaling-policy checks are reused by observe. @default 60000 */
  policyCacheMs?: number;
  /** How old an observed state a heartbeat may answer from. @default 30000 */
  heartbeatMaxAgeMs?: number;
}

/** The AWS provider: it diffs its groups' settings and `discover`s orphan groups. */
export interface AwsProvider extends Provider {
  readonly type: 'aws';
  /** Every group in the Region tagged as runfleet's (this manager's, when a manager id is set). */
  discover(signal?: AbortSignal): Promise<GroupRef[]>;
  diffGroup(fleet: Fleet, group: ObservedGroup | undefined): GroupDiff;
}

export function createAwsProvider(opts: AwsProviderOptions): AwsProvider {
  const built =
    opts.clients?.autoscaling && opts.clients.ec2 && opts.clients.instanceConnect
      ? undefined
      : createAwsClients(opts);
  const clients: AwsClients = {
    autoscaling: opts.clients?.autoscaling ?? built!.autoscaling,
    ec2: opts.clients?.ec2 ?? built!.ec2,
    instanceConnect: opts.clients?.instanceConnect ?? built!.instanceConnect,
  };
  const time = opts.time ?? systemTime;
  const ctx: AwsContext = {
    clients,
    retry: {
      policy: { ...DEFAULT_RETRY_POLICY, ...opts.retry },
      sleep: opts.sleep ?? ((ms, signal) => time.sleep(ms, signal)),
      random: opts.random ?? Math.random,
    },
    time,
    manager: opts.manager,
    policyCacheMs: opts.policyCacheMs ?? 60_000,
    cache: { seen: new Map() },
  };
  const heartbeatMaxAgeMs = opts.heartbeatMaxAgeMs ?? 30_000;
  const appliedConnectors = new Map<string, ConnectorSpec>();
  let sshKey = opts.sshKey;
  const ephemeralKey = (): EphemeralSshKey =>
    (sshKey ??= EphemeralSshKey.generate(`runfleet-${opts.manager ?? 'manager'}`));
  const readKey: ReadKeyFile = cachedKeyReader(opts.readKey, time);

  const connectorOf = (ref: GroupRef): ConnectorSpec => {
    const connector = opts.connectorFor?.(ref) ?? appliedConnectors.get(ref.fleet);
    if (!connector) {
      throw new FleetError(ErrorCode.INTERNAL, `no connector settings known for fleet ${ref.fleet}`, {
        hint: 'the composition root must pass connectorFor to createAwsProvider',
      });
    }
    return connector;
  };

  return {
    type: 'aws',
    observe: (groups: GroupRef[], signal?: AbortSignal): Promise<ObservedGroup[]> =>
      observeGroups(ctx, groups, signal),
    discover: (signal?: AbortSignal) => discoverGroups(ctx, signal),
    diffGroup: diffAwsGroup,
    applyGroup: async (fleet: Fleet, signal?: AbortSignal) => {
      appliedConnectors.set(fleet.name, fleet.connector);
      await applyAwsGroup(ctx, fleet, signal);
    },
    deleteGroup: (ref: GroupRef, fleet: Fleet | undefined, signal?: AbortSignal) =>
      deleteAwsGroup(ctx, ref, fleet, signal),
    increase: (ref: GroupRef, n: number, signal?: AbortSignal) => increaseAwsGroup(ctx, ref, n, signal),
    decrease: (ref: GroupRef, ids: string[], signal?: AbortSignal) => decreaseAwsGroup(ctx, ref, ids, signal),
    connectInfo: async (ref: GroupRef, id: string, signal?: AbortSignal): Promise<ConnectInfo> =>
      awsConnectInfo(ctx, ref, id, { connector: connectorOf(ref), ephemeralKey, readKey }, signal),
    heartbeat: (ref: GroupRef, id: string, signal?: AbortSignal) =>
      heartbeatAwsInstance(ctx, ref, id, heartbeatMaxAgeMs, signal),
  };
}
