/**
 * The composition root: the one place that builds clients and hands them over. Every command gets
 * its store, providers, time and logger from `openContext`; `runfleet watch` and `demo` get the
 * whole manager from `startManager`, which builds, once and in this order: the store and providers,
 * the ledger writer and the slot scheduler they share, the SSH pool, the job runtime (which builds
 * each fleet's GitLab client), the daemon, its HTTP server and the fleets directory watcher.
 * Arrows point one way: the daemon is handed the runtime's pieces; the runtime never sees the daemon.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { loadFleets } from '../config/index.js';
import type { Daemon } from '../daemon/daemon.js';
import type { DaemonServer } from '../daemon/http.js';
import type { FleetRunners } from '../runtime/fleet-runners.js';
import { ErrorCode, FleetError } from '../errors.js';
import type { Fleet } from '../model/fleet.js';
import type { GroupRef } from '../model/observed.js';
import { createLocalProvider } from '../providers/local/index.js';
import type { Provider } from '../providers/provider.js';
import { ProviderRegistry, type ProviderBuilder } from '../providers/registry.js';
import { createStaticProvider } from '../providers/static/index.js';
import { openSqliteStore } from '../store/index.js';
import type { PostgresStateStore } from '../store/postgres-store.js';
import { scopedStore } from '../store/scoped-store.js';
import type { LeaseKeeper } from '../daemon/lease-keeper.js';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { parseStateTarget, resolvePassword } from '../store/state-url.js';
import { LedgerWriter } from '../store/ledger-writer.js';
import type { StateStore } from '../store/store.js';
import type { Logger } from '../util/logger.js';
import { silentLogger } from '../util/logger.js';
import { systemTime, type Time } from '../util/time.js';
import { RUNFLEET_VERSION } from '../version.js';

export interface GlobalOptions {
  dir: string;
  state: string;
  color: boolean;
}

export interface Context {
  store: StateStore;
  /** The one write path of ledger rows; the daemon's slot scheduler shares it. */
  ledger: LedgerWriter;
  providers: ProviderRegistry;
  time: Time;
  logger: Logger;
  /** Directory holding the state file; the local provider keeps its sandboxes here. */
  stateDir: string;
  /** Replaces the fleets providers look connector settings up in (the daemon calls it on reload). */
  track(fleets: Fleet[]): void;
  /** Loads provider code the fleets need (the AWS SDK) before any of them is used. */
  ensureProviders(fleets: Pick<Fleet, 'provider'>[]): Promise<void>;
  close(): Promise<void>;
}

export interface ContextOptions {
  /** Test seam: builds every fleet's provider instead of the built-in ones (e.g. real sshds). */
  providers?: ProviderBuilder;
  /** @default systemTime */
  time?: Time;
  /** @default silentLogger (one-shot commands print for humans instead) */
  logger?: Logger;
  /** Where PGPASSWORD is read from. @default process.env */
  env?: NodeJS.ProcessEnv;
}

/**
 * The directory of this machine's own files (local provider sandboxes, known hosts, watch.json):
 * beside a SQLite state file, or `.runfleet/` in the working directory when state is in PostgreSQL.
 */
export function localStateDir(state: string): string {
  const target = parseStateTarget(state);
  return target.kind === 'sqlite' ? dirname(resolve(target.path)) : resolve('.runfleet');
}

/**
 * The client-side bound on one PostgreSQL statement (pg's `query_timeout`). Without it a statement
 * sent on a connection that died silently (a partition, a NAT dropping state: no FIN, no RST) waits
 * for TCP keepalive — hours — and so does whatever awaits it: a lease round, a takeover, a pass.
 * Every statement runfleet sends is a short one (an indexed read or write of a few rows; the
 * longest wait is another manager's schema migration, DDL on small tables, under its advisory lock),
 * taking milliseconds; 30 s is two lease TTLs, far above any of them on a loaded database, and
 * short enough that a manager whose connection hung renews or re-acquires its leases soon after the
 * network heals. A timed-out statement fails as STATE (retryable) and its connection is discarded.
 */
export const PG_QUERY_TIMEOUT_MS = 30_000;

/**
 * Opens the state store `--state` names: a SQLite file, or a PostgreSQL database by URL, whose
 * pool is built here (the password from the URL's password_file, else PGPASSWORD; never logged).
 */
export async function openStateStore(
  state: string,
  clock: Time,
  env: NodeJS.ProcessEnv = process.env,
): Promise<StateStore> {
  const target = parseStateTarget(state);
  if (target.kind === 'sqlite') return openSqliteStore(resolve(target.path), { clock });
  const password = resolvePassword(target, env);
  // Loaded only for a PostgreSQL store: SQLite users (and validate/plan start-up) never pay for pg.
  const [{ default: pg }, { openPostgresStore }] = await Promise.all([
    import('pg'),
    import('../store/postgres-store.js'),
  ]);
  const pool = new pg.Pool({
    host: target.host,
    port: target.port,
    database: target.database,
    ...(target.user ? { user: target.user } : {}),
    // An explicit empty string stops pg from falling back to its own reading of the environment.
    password: password ?? '',
    max: 5,
    connectionTimeoutMillis: 5000,
    query_timeout: PG_QUERY_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: 'runfleet',
  });
  return openPostgresStore(pool, target.location, { clock });
}

/**
 * Opens the store and prepares providers for the given fleets (and the applied ones: a fleet whose
 * file was removed is still observed and torn down). The AWS SDK is imported only when a fleet uses
 * it, so local-only runs start fast.
 */
export async function openContext(
  opts: GlobalOptions,
  fleets: Fleet[],
  load: ContextOptions = {},
): Promise<Context> {
  const stateDir = localStateDir(opts.state);
  const time = load.time ?? systemTime;
  const logger = load.logger ?? silentLogger;
  const store = await openStateStore(opts.state, time, load.env);
  let aws: typeof import('../providers/aws/index.js') | undefined;
  const ensureProviders = async (specs: Pick<Fleet, 'provider'>[]) => {
    if (!aws && specs.some((f) => f.provider.type === 'aws')) aws = await import('../providers/aws/index.js');
  };
  await ensureProviders([...fleets, ...(await store.listFleets()).map((f) => f.spec)]);
  let local: Provider | undefined;
  // Providers get a fleet's connector settings by group, as connectInfo only receives a GroupRef.
  let byName = new Map(fleets.map((f) => [f.name, f]));
  const connectorFor = (ref: GroupRef) => byName.get(ref.fleet)?.connector;

  const providers = new ProviderRegistry((spec) => {
    if (load.providers) return load.providers(spec);
    switch (spec.type) {
      case 'local':
        local ??= createLocalProvider({ stateDir, time });
        return local;
      case 'aws':
        if (!aws) throw new FleetError(ErrorCode.INTERNAL, 'AWS provider requested but not loaded');
        return aws.createAwsProvider({
          region: spec.region,
          profile: spec.profile,
          endpoint: spec.endpoint,
          time,
          connectorFor,
        });
      case 'static':
        return createStaticProvider({ hosts: spec.hosts, connectorFor, time });
    }
  });
  const ledger = new LedgerWriter(store);
  return {
    store,
    ledger,
    providers,
    time,
    logger,
    stateDir,
    ensureProviders,
    track: (current) => {
      byName = new Map(current.map((f) => [f.name, f]));
    },
    close: async () => {
      await ledger.flush();
      await store.close();
    },
  };
}

export interface ManagerOptions {
  listen: string;
  graceMs: number;
  intervalMs: number;
  /** @default the daemon's (60 s) */
  heartbeatIntervalMs?: number;
  logger: Logger;
  /** Environment GitLab token references are read from. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Overrides every fleet's `gitlab.check_interval` (demos). @default each fleet's own */
  checkIntervalMs?: number;
  /**
   * The time of the GitLab protocol (job requests, trace and keep-alive rhythms) when it must
   * differ from the manager's: demos and tests run its 3 s / 30 s in milliseconds. Job deadlines
   * and kill graces stay on the manager's time. @default the manager's
   */
  runtimeTime?: Time;
  /** Lease timings (renew, TTL, margin), for tests and benchmarks. @default 5 s / 15 s / 1 s */
  leaseTimings?: { renewMs?: number; ttlMs?: number; marginMs?: number };
  /**
   * Test seam: builds the providers instead of the built-in ones (integration tests inject one
   * that runs a real sshd per instance). Never set by the CLI.
   */
  providers?: ProviderBuilder;
}

export interface WatchFile {
  pid: number;
  listen: string;
  started_at: string;
  state: string;
}

/** Where a running daemon says how to reach it; `runfleet status` reads it. */
export function watchFilePath(state: string): string {
  return join(localStateDir(state), 'watch.json');
}

export interface Manager {
  daemon: Daemon;
  /** With the state in PostgreSQL: this manager's fleet leases. */
  leases?: LeaseKeeper;
  runtime: FleetRunners;
  ctx: Context;
  /** host:port of the HTTP server. */
  address: string;
  /** Graceful stop: no new jobs, running ones get the grace period, lock released. */
  stop(): Promise<void>;
}

/** Builds and starts the long-running manager (`runfleet watch`, `runfleet demo`). */
/**
 * What only the manager (`watch`, `demo`) runs: the daemon, the job runtime (ssh2), metrics. Loaded
 * here on first use, so `plan`, `apply` and `validate` do not load them at start-up.
 */
async function managerModules() {
  const [watcher, daemon, options, http, metrics, knownHosts, ssh, runners, gitlab, probe, slots, caches] =
    await Promise.all([
      import('../daemon/config-watcher.js'),
      import('../daemon/daemon.js'),
      import('../daemon/daemon-options.js'),
      import('../daemon/http.js'),
      import('../daemon/metrics.js'),
      import('../runtime/connectors/known-hosts.js'),
      import('../runtime/connectors/ssh-connector.js'),
      import('../runtime/fleet-runners.js'),
      import('../runtime/gitlab/client.js'),
      import('../runtime/readiness-probe.js'),
      import('../runtime/slots/scheduler.js'),
      import('../runtime/cache/cache-stores.js'),
    ]);
  return {
    ...watcher,
    ...daemon,
    ...options,
    ...http,
    ...metrics,
    ...knownHosts,
    ...ssh,
    ...runners,
    ...gitlab,
    ...probe,
    ...slots,
    ...caches,
  };
}
type ManagerModules = Awaited<ReturnType<typeof managerModules>>;

export async function startManager(opts: GlobalOptions, m: ManagerOptions): Promise<Manager> {
  const mods = await managerModules();
  // Bound first: a taken port must fail before the lock is taken or any instance is created.
  const server = await mods.bindDaemonServer(m.listen);
  try {
    return await startBound(opts, m, server, mods);
  } catch (e) {
    await server.close();
    throw e;
  }
}

async function startBound(
  opts: GlobalOptions,
  m: ManagerOptions,
  server: DaemonServer,
  mods: ManagerModules,
): Promise<Manager> {
  const {
    DaemonMetrics,
    defaultSystemId,
    SlotScheduler,
    SshConnectorPool,
    KnownHostsFile,
    FleetRunners,
    GitlabClient,
    Daemon,
    connectorReadinessProbe,
    watchFleetDir,
    CacheStores,
  } = mods;
  const initial = await loadFleets(opts.dir);
  const ctx = await openContext(
    opts,
    initial.fleets.map((d) => d.spec),
    { providers: m.providers, logger: m.logger },
  );
  const { time, logger } = ctx;
  const metrics = new DaemonMetrics(defaultSystemId());
  // Several managers on one PostgreSQL store: fleets are owned through leases (README "Several
  // managers"); the daemon sees only its own fleets and every write carries its lease's term.
  let keeper: LeaseKeeper | undefined;
  let leaseBound: ((inner: ProviderRegistry) => ProviderRegistry) | undefined;
  let fileFleets = initial.fleets.map((d) => d.spec.name);
  const raw = ctx.store;
  const owns = (fleet: string) => !keeper || keeper.owns(fleet);
  // The daemon and the job runtime are built below; ownership changes reach them once they exist.
  const late: { daemon?: Daemon; runtime?: FleetRunners } = {};
  if (isPostgresStore(raw)) {
    const [{ LeaseKeeper }, { PostgresLeases }, bound] = await Promise.all([
      import('../daemon/lease-keeper.js'),
      import('../store/pg-leases.js'),
      import('../daemon/lease-bound-providers.js'),
    ]);
    const me = {
      id: `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
      host: hostname(),
      pid: process.pid,
    };
    const leaseKeeper = new LeaseKeeper({
      api: new PostgresLeases(raw.pool, raw.location),
      me,
      time,
      logger: logger.child({ component: 'leases' }),
      fleets: async () => [...new Set([...fileFleets, ...(await raw.listFleets()).map((f) => f.name)])],
      onChange: async (gained, lost) => {
        await late.daemon?.ownershipChanged(gained, lost);
      },
      // Lost fleets' job requests stop at once: the daemon's pass that would re-sync the runtime
      // needs the database, which may be what is gone.
      onLost: (lost) => late.runtime?.ownershipLost(lost),
      events: metrics.leases,
      ...(m.leaseTimings ?? {}),
    });
    keeper = leaseKeeper;
    leaseBound = (inner) => bound.leaseBoundRegistry(inner, leaseKeeper);
    raw.setFence(me.id, (fleet, purpose) => leaseKeeper.termOf(fleet, purpose));
  }
  const runtimeTime = m.runtimeTime ?? time;
  const { ledger } = ctx;
  const slots = new SlotScheduler({ ledger, time, logger });
  // Connectors and executors wait on real processes (kill graces, job deadlines): always real time.
  const ssh = new SshConnectorPool({
    knownHosts: new KnownHostsFile(join(ctx.stateDir, 'known_hosts.json')),
    time,
  });
  const runtime = new FleetRunners({
    scheduler: slots,
    providers: ctx.providers,
    ssh,
    stateDir: ctx.stateDir,
    time: runtimeTime,
    logger: logger.child({ component: 'runtime' }),
    version: RUNFLEET_VERSION,
    env: m.env,
    checkIntervalMs: m.checkIntervalMs,
    client: (o) => new GitlabClient(o),
    caches: new CacheStores({
      stateDir: ctx.stateDir,
      s3Client: async (c) => new (await import('@aws-sdk/client-s3')).S3Client(c),
      env: m.env,
    }),
    onApiRequest: (fleet, endpoint, status) => metrics.apiRequest(fleet, endpoint, status),
    owns,
  });
  late.runtime = runtime;
  const daemon = new Daemon({
    store: keeper ? scopedStore(raw, owns) : raw,
    ...(keeper
      ? {
          stateLock: false,
          owns,
          scope: (only: ReadonlySet<string>) => scopedStore(raw, (f) => only.has(f) && owns(f)),
        }
      : {}),
    // With leases every provider mutation runs inside its fleet's lease (lease-bound-providers.ts).
    providers: leaseBound ? leaseBound(ctx.providers) : ctx.providers,
    slots,
    ledger,
    metrics,
    probe: connectorReadinessProbe(ssh),
    time,
    logger,
    // Provider code a new fleet needs (the AWS SDK) is loaded before the daemon plans with it.
    loadConfig: async () => {
      const loaded = await loadFleets(opts.dir);
      await ctx.ensureProviders(loaded.fleets.map((d) => d.spec));
      // With leases the daemon plans only the fleets it owns (`owns`), judged at each pass.
      if (keeper) fileFleets = loaded.fleets.map((d) => d.spec.name);
      return loaded;
    },
    intervalMs: m.intervalMs,
    ...(m.heartbeatIntervalMs ? { heartbeatIntervalMs: m.heartbeatIntervalMs } : {}),
    shutdownGraceMs: m.graceMs,
    runnerStatus: (fleet) => runtime.status(fleet),
    onFleets: (fleets) => {
      ctx.track(fleets);
      return runtime.sync(fleets);
    },
  });
  late.daemon = daemon;
  try {
    await daemon.start();
    await keeper?.start();
  } catch (e) {
    await runtime.stop(0);
    await keeper?.stop();
    if (daemon.state === 'running') await daemon.stop({ graceMs: 0 });
    await ctx.close();
    throw e;
  }
  server.attach(daemon, { time, logger });
  const watcher = await watchFleetDir(opts.dir, () => daemon.reloadConfig(), { logger });
  // Written last: once it exists, the daemon serves and sees every later edit of the fleet files.
  const watchFile = watchFilePath(opts.state);
  const info: WatchFile = {
    pid: process.pid,
    listen: server.address,
    started_at: daemon.startedAt.toISOString(),
    state: 'running',
  };
  await mkdir(dirname(watchFile), { recursive: true });
  await writeFile(watchFile, `${JSON.stringify(info)}\n`);

  const running = daemon;
  return {
    daemon: running,
    ...(keeper ? { leases: keeper } : {}),
    runtime,
    ctx,
    address: server.address,
    async stop() {
      try {
        await watcher.close();
        // Hand-over: no fleet is assigned to this manager any more, its jobs get the grace
        // period, then the leases are released and the next owners are notified.
        await keeper?.beginHandOver();
        await Promise.all([runtime.stop(m.graceMs), running.stop()]);
        await keeper?.stop();
      } finally {
        await server.close();
        await rm(watchFile, { force: true });
        await ctx.close();
      }
    },
  };
}

/** A PostgreSQL store, told apart without loading its module (and pg) for SQLite users. */
function isPostgresStore(store: StateStore): store is PostgresStateStore {
  return 'pool' in store && 'setFence' in store;
}
