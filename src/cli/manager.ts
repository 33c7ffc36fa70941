/**
 * The long-running manager, composed once for `watch` and `demo`: the daemon (capacity), the job
 * runtime (GitLab runners), their HTTP server (/metrics, /healthz, /v1/status) and the fleets
 * directory watcher, all sharing one store, provider registry and slot scheduler.
 */
import { rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { loadFleets } from '../config/index.js';
import { watchFleetDir } from '../daemon/config-watcher.js';
import { Daemon } from '../daemon/daemon.js';
import { startDaemonServer } from '../daemon/http.js';
import type { Logger } from '../util/logger.js';
import type { ProviderBuilder } from '../providers/registry.js';
import { JobRuntime } from '../runtime/job-runtime.js';
import type { Time } from '../util/time.js';
import { RUNFLEET_VERSION } from '../version.js';
import { openContext, type Context, type GlobalOptions } from './context.js';

export interface ManagerOptions {
  listen: string;
  graceMs: number;
  intervalMs: number;
  /** @default the daemon's (60 s) */
  heartbeatIntervalMs?: number;
  logger: Logger;
  /** Environment GitLab token references are read from. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Runtime knobs for demos and tests: job-request pause and trace time. */
  checkIntervalMs?: number;
  runtimeTime?: Time;
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
export function watchFilePath(statePath: string): string {
  return join(dirname(resolve(statePath)), 'watch.json');
}

export interface Manager {
  daemon: Daemon;
  runtime: JobRuntime;
  ctx: Context;
  /** host:port of the HTTP server. */
  address: string;
  /** Graceful stop: no new jobs, running ones get the grace period, lock released. */
  stop(): Promise<void>;
}

export async function startManager(opts: GlobalOptions, m: ManagerOptions): Promise<Manager> {
  const initial = await loadFleets(opts.dir);
  const ctx = await openContext(
    opts,
    initial.fleets.map((d) => d.spec),
    { providers: m.providers },
  );
  const logger = m.logger;
  // The runtime needs the daemon's scheduler and the daemon calls the runtime: tie the knot late.
  const late: { runtime?: JobRuntime } = {};
  const daemon = new Daemon({
    store: ctx.store,
    providers: ctx.providers,
    time: ctx.time,
    logger,
    // Provider code a new fleet needs (the AWS SDK) is loaded before the daemon plans with it.
    loadConfig: async () => {
      const loaded = await loadFleets(opts.dir);
      await ctx.ensureProviders(loaded.fleets.map((d) => d.spec));
      return loaded;
    },
    intervalMs: m.intervalMs,
    ...(m.heartbeatIntervalMs ? { heartbeatIntervalMs: m.heartbeatIntervalMs } : {}),
    shutdownGraceMs: m.graceMs,
    probe: (...args) => late.runtime!.probe(...args),
    runnerStatus: (fleet) => late.runtime?.status(fleet),
    onFleets: (fleets) => {
      ctx.track(fleets);
      return late.runtime?.sync(fleets);
    },
  });
  const runtime = new JobRuntime({
    scheduler: daemon.slots,
    providers: ctx.providers,
    stateDir: ctx.stateDir,
    time: m.runtimeTime ?? ctx.time,
    logger: logger.child({ component: 'runtime' }),
    version: RUNFLEET_VERSION,
    env: m.env,
    checkIntervalMs: m.checkIntervalMs,
  });
  late.runtime = runtime;
  try {
    await daemon.start();
  } catch (e) {
    await ctx.close();
    throw e;
  }
  const server = await startDaemonServer(daemon, m.listen, { time: ctx.time, logger });
  const watcher = await watchFleetDir(opts.dir, () => daemon.reloadConfig(), { logger });
  // Written last: once it exists, the daemon serves and sees every later edit of the fleet files.
  const watchFile = watchFilePath(opts.state);
  const info: WatchFile = {
    pid: process.pid,
    listen: server.address,
    started_at: daemon.startedAt.toISOString(),
    state: 'running',
  };
  await writeFile(watchFile, `${JSON.stringify(info)}\n`);

  return {
    daemon,
    runtime,
    ctx,
    address: server.address,
    async stop() {
      try {
        await watcher.close();
        await Promise.all([runtime.stop(m.graceMs), daemon.stop()]);
      } finally {
        await server.close();
        await rm(watchFile, { force: true });
        await ctx.close();
      }
    },
  };
}
