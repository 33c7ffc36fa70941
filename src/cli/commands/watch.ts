import { createPinoLogger } from '../../util/logger.js';
import type { GlobalOptions } from '../root.js';
import type { Io } from '../io.js';
import { FleetError } from '../../errors.js';
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
    leaseTimings: leaseTimingsFromEnv(process.env),
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

/**
 * RUNFLEET_LEASE_RENEW_MS / RUNFLEET_LEASE_TTL_MS shorten the lease rhythm (tests, benchmarks);
 * unset: 5 s / 15 s. The TTL must exceed twice the renew period so one lost round loses nothing.
 */
export function leaseTimingsFromEnv(
  env: NodeJS.ProcessEnv,
): { renewMs: number; ttlMs: number; marginMs: number } | undefined {
  const renew = env['RUNFLEET_LEASE_RENEW_MS'];
  const ttl = env['RUNFLEET_LEASE_TTL_MS'];
  if (renew === undefined && ttl === undefined) return undefined;
  const renewMs = Number(renew ?? 5000);
  const ttlMs = Number(ttl ?? renewMs * 3);
  if (!Number.isInteger(renewMs) || !Number.isInteger(ttlMs) || renewMs < 50 || ttlMs <= 2 * renewMs) {
    throw new FleetError(
      'USAGE',
      `RUNFLEET_LEASE_RENEW_MS=${renew ?? ''} RUNFLEET_LEASE_TTL_MS=${ttl ?? ''}: need whole milliseconds, renew >= 50 and TTL > 2 x renew`,
    );
  }
  return { renewMs, ttlMs, marginMs: Math.min(1000, Math.floor(renewMs / 2)) };
}
