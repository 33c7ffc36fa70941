import { createPinoLogger } from '../../util/logger.js';
import type { GlobalOptions } from '../root.js';
import type { Io } from '../io.js';
import { startManager } from '../root.js';

export interface WatchOptions {
  listen: string;
  graceMs: number;
  intervalMs: number;
  heartbeatIntervalMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
}

/**
 * `runfleet watch`: runs the daemon and the job runtime until SIGTERM or SIGINT. JSON logs go to
 * stdout, a one-line human summary to stderr. Returns the exit code.
 */
export async function watch(opts: GlobalOptions, w: WatchOptions, io: Io): Promise<number> {
  const logger = createPinoLogger({ level: w.logLevel });
  const manager = await startManager(opts, {
    listen: w.listen,
    graceMs: w.graceMs,
    intervalMs: w.intervalMs,
    heartbeatIntervalMs: w.heartbeatIntervalMs,
    logger,
  });
  io.err(
    `runfleet watch: managing ${opts.dir} (state ${manager.ctx.store.location}); ` +
      `metrics and status on http://${manager.address}; stop with Ctrl-C or SIGTERM`,
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
    await manager.stop();
  } catch (e) {
    logger.error('shutdown failed', { error: String(e) });
    code = 1;
  }
  io.err(`runfleet watch: stopped (${signal})`);
  return code;
}
