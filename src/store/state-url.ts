/**
 * Where `--state` points: a SQLite file (the default) or a PostgreSQL database given as
 * `postgres://user@host:port/db`. The URL never carries the password: it comes from `PGPASSWORD`,
 * or from a file named by the URL's `password_file` query parameter, and it appears in no location,
 * error or log (the location shown is the URL as given, which has none).
 */
import { readFileSync } from 'node:fs';
import { FleetError, asError } from '../errors.js';

export interface PostgresTarget {
  kind: 'postgres';
  /** The URL as shown to humans: no password (one is refused), no query. */
  location: string;
  host: string;
  port: number;
  database: string;
  user?: string;
  /** Read from the file named by `password_file`, if there is one (else `PGPASSWORD` applies). */
  passwordFile?: string;
}

export type StateTarget = { kind: 'sqlite'; path: string } | PostgresTarget;

const PARAMS = new Set(['password_file']);

/** Tells a PostgreSQL URL from a file path; throws FleetError(USAGE) for a malformed URL. */
export function parseStateTarget(state: string): StateTarget {
  if (!/^postgres(ql)?:\/\//i.test(state)) return { kind: 'sqlite', path: state };
  const bad = (why: string, hint: string) =>
    new FleetError('USAGE', `--state ${redactUrl(state)}: ${why}`, { hint });
  let url: URL;
  try {
    url = new URL(state);
  } catch {
    throw bad('not a valid URL', 'write it as postgres://user@host:5432/database');
  }
  if (url.password !== '') {
    throw bad(
      'the URL contains a password',
      'remove it from the URL; set PGPASSWORD, or add ?password_file=/path/to/file',
    );
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!database || database.includes('/')) {
    throw bad('no database name', 'write it as postgres://user@host:5432/database');
  }
  if (!url.hostname) throw bad('no host', 'write it as postgres://user@host:5432/database');
  for (const key of url.searchParams.keys()) {
    if (!PARAMS.has(key)) throw bad(`unknown parameter ${key}`, 'the only parameter is password_file');
  }
  const port = url.port === '' ? 5432 : Number(url.port);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const user = url.username === '' ? undefined : decodeURIComponent(url.username);
  const passwordFile = url.searchParams.get('password_file') ?? undefined;
  const location = `postgres://${user ? `${encodeURIComponent(user)}@` : ''}${url.host}/${encodeURIComponent(database)}`;
  return {
    kind: 'postgres',
    location,
    host,
    port,
    database,
    ...(user ? { user } : {}),
    ...(passwordFile ? { passwordFile } : {}),
  };
}

/**
 * The password for `target`: the `password_file`'s first line, else `env.PGPASSWORD`, else none
 * (trust or peer authentication). Throws FleetError(STATE) naming the file (never its content).
 */
export function resolvePassword(target: PostgresTarget, env: NodeJS.ProcessEnv): string | undefined {
  if (target.passwordFile) {
    let text: string;
    try {
      text = readFileSync(target.passwordFile, 'utf8');
    } catch (e) {
      throw new FleetError(
        'STATE',
        `cannot read the password file ${target.passwordFile} of state store ${target.location}: ${asError(e).message}`,
        { hint: 'check the path given as password_file and that runfleet may read it' },
      );
    }
    return text.split(/\r?\n/)[0] ?? '';
  }
  const env_ = env['PGPASSWORD'];
  return env_ === undefined || env_ === '' ? undefined : env_;
}

/** A URL with any password replaced, for messages about a URL that may be malformed. */
export function redactUrl(text: string): string {
  return text.replace(/^(postgres(?:ql)?:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
}
