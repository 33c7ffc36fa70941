import type { RunnerStatus } from '../runtime/fleet-runners.js';
/**
 * What the daemon is built from: `DaemonOptions` (every collaborator injected, most with a
 * default) and the timing settings resolved from them.
 */
import { hostname } from 'node:os';
import type { LoadResult } from '../config/index.js';
import type { Fleet } from '../model/fleet.js';
import type { ProviderRegistry } from '../providers/registry.js';
import type { SlotScheduler } from '../runtime/slots/scheduler.js';
import type { LedgerWriter } from '../store/ledger-writer.js';
import type { LockInfo, StateStore } from '../store/store.js';
import type { DaemonMetrics } from './metrics.js';
import type { Time } from '../util/time.js';
import { hashOf } from '../util/hash.js';
import type { Logger } from '../util/logger.js';
import type { ReadinessProbe } from '../runtime/readiness-probe.js';
import type { BackoffOptions } from './readiness-backoff.js';

export interface DaemonOptions {
  store: StateStore;
  providers: ProviderRegistry;
  /** Reads the fleets directory (`() => loadFleets(dir)`). */
  loadConfig: () => Promise<LoadResult>;
  /** @default systemTime */
  time?: Time;
  /** @default silentLogger */
  logger?: Logger;
  /** The job slots of every fleet, shared with the job runtime (the daemon's source of demand). */
  slots: SlotScheduler;
  /** The one write path of ledger rows, shared with the slot scheduler. */
  ledger: LedgerWriter;
  /** Runs instance_ready_command (or `true`) on each new instance, through the runtime's connectors. */
  probe: ReadinessProbe;
  /** @default a fresh registry labelled with `systemId` */
  metrics?: DaemonMetrics;
  /** Observe interval when nothing is in motion. @default 60_000 */
  intervalMs?: number;
  /** Observe interval while instances are creating, being probed or deleting. @default 2_000 */
  expectingIntervalMs?: number;
  /** How long a job waits for a slot (GitLab's instance_acquire_timeout). @default 900_000 */
  acquireTimeoutMs?: number;
  /** How long a new instance may take to pass its heartbeat and ready command. @default 600_000 */
  readyTimeoutMs?: number;
  /**
   * The shortest time between two heartbeats of one idle ready instance (`health-checker.ts`).
   * @default 60_000
   */
  heartbeatIntervalMs?: number;
  /** How long `stop` waits for running jobs. @default 600_000 */
  shutdownGraceMs?: number;
  /** Pauses after readiness failures. @default base 10 s, max 10 min */
  backoff?: BackoffOptions;
  /** A demand-triggered pass reuses a provider observation younger than this. @default 5_000 */
  observeMaxAgeMs?: number;
  /** Who the state lock names. @default `user@host pid N` */
  lockHolder?: string;
  /**
   * Whether the daemon holds the state lock from start to stop. @default true. Managers sharing a
   * PostgreSQL store own fleets through leases instead, and each sees only its own (`store` is
   * scoped to them).
   */
  stateLock?: boolean;
  /** With leases: the store restricted to `fleets` (a takeover resolves only what it gained). */
  scope?: (fleets: ReadonlySet<string>) => StateStore;
  /**
   * With leases: whether this manager owns a fleet now (its lease is trusted). The daemon plans a
   * fleet only while it owns it and once `ownershipChanged` has taken it over. @default every fleet
   */
  owns?: (fleet: string) => boolean;
  /** Whether the holder of a `watch` lock still runs. @default checks the pid on this host */
  isLockHolderAlive?: (lock: LockInfo) => boolean;
  /** `system_id` label of GitLab-compatible metrics. @default derived from the host name */
  systemId?: string;
  /**
   * Told the fleet definitions in force after every pass (the job runtime starts, updates and
   * stops its GitLab runners from them). Must not throw.
   */
  onFleets?: (fleets: Fleet[]) => unknown;
  /** The job runtime's view of a fleet's GitLab runner, for `status`. */
  runnerStatus?: (fleet: string) => RunnerStatus | undefined;
}

const DEFAULTS = {
  intervalMs: 60_000,
  expectingIntervalMs: 2_000,
  acquireTimeoutMs: 900_000,
  readyTimeoutMs: 600_000,
  shutdownGraceMs: 600_000,
  observeMaxAgeMs: 5_000,
  heartbeatIntervalMs: 60_000,
};

/** The daemon's intervals and timeouts, defaults filled in. */
export type DaemonSettings = typeof DEFAULTS;

export function resolveSettings(opts: DaemonOptions): DaemonSettings {
  const settings = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as (keyof DaemonSettings)[]) {
    const v = opts[key];
    if (v !== undefined) settings[key] = v;
  }
  return settings;
}

/** The default `system_id`: stable for this host, and not the host name itself. */
export function defaultSystemId(): string {
  return `s_${hashOf(hostname()).slice(0, 12)}`;
}
