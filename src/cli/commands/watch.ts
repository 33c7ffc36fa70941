import { rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { loadFleets } from '../../config/index.js';
import { Daemon } from '../../daemon/daemon.js';
import { watchFleetDir } from '../../daemon/config-watcher.js';
import { startDaemonServer } from '../../daemon/http.js';
import { createPinoLogger } from '../../daemon/logger.js';
import { systemTimers } from '../../daemon/timers.js';
import type { Fleet } from '../../model/fleet.js';
import { openContext, type GlobalOptions } from '../context.js';
import type { Io } from '../io.js';

export interface WatchOptions {
  listen: string;
  graceMs: number;
  intervalMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
}

/** Where a running daemon says how to reach it; `runfleet status` reads it. */
export function watchFilePath(statePath: string): string {
  return join(dirname(resolve(statePath)), 'watch.json');
}

export interface WatchFile {
  pid: number;
  listen: string;
  started_at: string;
  state: string;
}

/**
 * `runfleet watch`: runs the daemon until SIGTERM or SIGINT. JSON logs go to stdout, a one-line
 * human summary to stderr. Returns the exit code.
 */
export async function watch(opts: GlobalOptions, w: WatchOptions, io: Io): Promise<number> {
  const initial = await loadFleets(opts.dir);
  // A fleet file may switch to AWS while the daemon runs: load the AWS provider up front.
  // (openContext only reads `provider.type` and `name` of this placeholder.)
  const anyAws = { name: '', provider: { type: 'aws', region: 'us-east-1' } } as Fleet;
  const ctx = await openContext(opts, [...initial.fleets.map((d) => d.spec), anyAws]);
  const logger = createPinoLogger({ level: w.logLevel });
  const daemon = new Daemon({
    store: ctx.store,
    providers: ctx.providers,
    clock: ctx.clock,
    timers: systemTimers,
    logger,
    loadConfig: () => loadFleets(opts.dir),
    intervalMs: w.intervalMs,
    shutdownGraceMs: w.graceMs,
  });
  try {
    await daemon.start();
  } catch (e) {
    await ctx.close();
    throw e;
  }
  const server = await startDaemonServer(daemon, w.listen, { timers: systemTimers, logger });
  const watchFile = watchFilePath(opts.state);
  const info: WatchFile = {
    pid: process.pid,
    listen: server.address,
    started_at: daemon.startedAt.toISOString(),
    state: 'running',
  };
  await writeFile(watchFile, `${JSON.stringify(info)}\n`);
  const watcher = await watchFleetDir(opts.dir, () => daemon.reloadConfig(), { logger });
  io.err(
    `runfleet watch: managing ${opts.dir} (state ${ctx.store.location}); ` +
      `metrics and status on http://${server.address}; stop with Ctrl-C or SIGTERM`,
  );

  const signal = await new Promise<NodeJS.Signals>((resolveSignal) => {
    const onSignal = (s: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolveSignal(s);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  logger.info('shutdown requested', { event: 'signal', signal });
  let code = 0;
  try {
    await watcher.close();
    await daemon.stop();
  } catch (e) {
    logger.error('shutdown failed', { error: String(e) });
    code = 1;
  } finally {
    await server.close();
    await rm(watchFile, { force: true });
    await ctx.close();
  }
  io.err(`runfleet watch: stopped (${signal})`);
  return code;
}
