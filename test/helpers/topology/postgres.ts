/**
 * A PostgreSQL of the test's own (docs/ test recipe): `initdb` in a temp directory, `pg_ctl start`
 * on a free loopback port, a fresh database per test. Debian's binaries live in
 * /usr/lib/postgresql/<major>/bin; initdb refuses to run as root, so as root the cluster runs as
 * the `postgres` user (runuser). Missing binaries skip loudly, or fail with CI=true.
 *
 * Authentication: `trust` for the superuser `postgres`, and a role `secretive` that must give its
 * password over TCP (scram-sha-256), so tests can check where passwords come from and that they
 * are never printed.
 */
import { execFile } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { Test } from 'tap';
import { onProcessEnd } from './processes.js';

const run = promisify(execFile);

export const SECRET_ROLE = 'secretive';
export const SECRET_PASSWORD = 'pw-0f9e8d7c-never-printed';

export interface PgCluster {
  host: string;
  port: number;
  /** `postgres://postgres@127.0.0.1:PORT/<db>` */
  url(database: string, user?: string): string;
  /** Creates a database with a fresh name; returns its name. */
  createDatabase(prefix?: string): Promise<string>;
  /** A pool on `database` as the superuser (the test ends it, or the store it is handed to does). */
  pool(database: string): pg.Pool;
  /**
   * Stops the server, e.g. to test connection loss (`immediate`: no shutdown checkpoint, clients
   * cut off as by a crash); `start` brings it back on the same port. @default 'fast'
   */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
}

/** The newest installed PostgreSQL's bin directory, or undefined. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const majors = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(a) - Number(b));
  const newest = majors[majors.length - 1];
  return newest ? join(root, newest, 'bin') : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function adminPool(host: string, port: number): pg.Pool {
  const admin = new pg.Pool({ host, port, user: 'postgres', database: 'postgres', max: 2 });
  admin.on('error', () => undefined);
  return admin;
}

type PgTest = Pick<Test, 'skip' | 'fail' | 'teardown'>;

/**
 * Starts a cluster for this test (or file, when `t` is the file's root test) and stops it on
 * teardown. Returns undefined after skipping (binaries missing, CI not true) or failing (CI=true).
 */
export async function startPostgres(
  t: PgTest,
  /** Extra server settings, e.g. `['shared_preload_libraries=pg_stat_statements']`. */
  settings: string[] = [],
): Promise<PgCluster | undefined> {
  const bin = postgresBinDir();
  if (!bin) {
    const message =
      'MISSING postgresql: PostgreSQL tests not run. Install with: apt-get install -y postgresql';
    if (process.env.CI === 'true') t.fail(message);
    else {
      console.error(`\n!!!!!!!! ${message} !!!!!!!!\n`);
      void t.skip(message, () => undefined);
    }
    return undefined;
  }
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'runfleet-pg-'));
  chmodSync(dir, 0o755);
  const sh = async (program: string, args: string[]) => {
    const exe = join(bin, program);
    return asRoot ? run('runuser', ['-u', 'postgres', '--', exe, ...args]) : run(exe, args);
  };
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const data = join(dir, 'data');
  await sh('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
  writeFileSync(
    join(data, 'pg_hba.conf'),
    [
      'local all all trust',
      `host all ${SECRET_ROLE} 127.0.0.1/32 scram-sha-256`,
      'host all all 127.0.0.1/32 trust',
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const host = '127.0.0.1';
  const opts = [
    `-k ${dir} -h ${host} -p ${port} -F -c max_connections=200`,
    ...settings.map((x) => `-c ${x}`),
  ].join(' ');
  const start = () =>
    sh('pg_ctl', ['-D', data, '-o', opts, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']).then(
      () => undefined,
    );
  const stop = (mode: 'fast' | 'immediate' = 'fast') =>
    sh('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop']).then(() => undefined);
  await start();
  let running = true;
  const reap = () => {
    try {
      if (running) {
        // Synchronous last resort when the test process ends early: the postmaster's pid file.
        const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
        if (pid > 0) process.kill(pid, 'SIGQUIT');
      }
    } catch {
      // already gone
    }
  };
  const unregister = onProcessEnd(reap);
  let n = 0;
  let admin = adminPool(host, port);
  await admin.query(`CREATE ROLE ${SECRET_ROLE} LOGIN PASSWORD '${SECRET_PASSWORD}'`);
  const cluster: PgCluster = {
    host,
    port,
    url: (database, user = 'postgres') => `postgres://${user}@${host}:${port}/${database}`,
    async createDatabase(prefix = 'rf') {
      const name = `${prefix}_${process.pid}_${++n}`;
      await admin.query(`CREATE DATABASE ${name} OWNER ${SECRET_ROLE}`);
      return name;
    },
    pool: (database) => new pg.Pool({ host, port, user: 'postgres', database, max: 4 }),
    async stop(mode) {
      await admin.end().catch(() => undefined);
      await stop(mode);
      running = false;
    },
    async start() {
      await start();
      running = true;
      admin = adminPool(host, port);
    },
  };
  t.teardown(async () => {
    unregister();
    await admin.end().catch(() => undefined);
    if (running) await stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  return cluster;
}
