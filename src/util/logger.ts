/**
 * The one logging seam of the manager (daemon, job runtime, GitLab client, providers). Library code logs through `Logger`; `createPinoLogger` puts structured
 * JSON lines behind it (pino), `silentLogger` and `memoryLogger` serve tests. Keys are stable
 * (`fleet`, `instance`, `event`) so logs can be queried. Secrets never reach a log line: callers
 * never pass connect info or tokens, and pino redacts the usual key names as a second guard.
 */
import { pino, type DestinationStream } from 'pino';

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `bindings` to every line. */
  child(bindings: LogFields): Logger;
}

/** Key paths pino blanks out whatever the caller passes. */
export const REDACTED_PATHS = [
  'privateKey',
  '*.privateKey',
  'token',
  '*.token',
  'password',
  '*.password',
  'authorization',
  '*.authorization',
];

export interface PinoLoggerOptions {
  /** @default 'info' */
  level?: 'debug' | 'info' | 'warn' | 'error';
  /** Where lines go. @default stdout */
  destination?: DestinationStream;
}

export function createPinoLogger(opts: PinoLoggerOptions = {}): Logger {
  const base = pino(
    {
      level: opts.level ?? 'info',
      base: { name: 'runfleet' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    // Synchronous writes: a daemon's last lines (shutdown) must not be lost at exit.
    opts.destination ?? pino.destination({ dest: 1, sync: true }),
  );
  return wrapPino(base);
}

function wrapPino(p: pino.Logger): Logger {
  return {
    debug: (msg, fields) => p.debug(fields ?? {}, msg),
    info: (msg, fields) => p.info(fields ?? {}, msg),
    warn: (msg, fields) => p.warn(fields ?? {}, msg),
    error: (msg, fields) => p.error(fields ?? {}, msg),
    child: (bindings) => wrapPino(p.child(bindings)),
  };
}

export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};

export interface LogLine extends LogFields {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
}

/** Keeps lines in memory, for tests that assert on what was logged. */
export function memoryLogger(lines: LogLine[] = [], bindings: LogFields = {}): Logger & { lines: LogLine[] } {
  const at =
    (level: LogLine['level']) =>
    (msg: string, fields?: LogFields): void => {
      lines.push({ ...bindings, ...fields, level, msg });
    };
  return {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => memoryLogger(lines, { ...bindings, ...more }),
  };
}
