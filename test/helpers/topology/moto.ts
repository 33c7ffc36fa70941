/**
 * A real S3-compatible server for the cache tests: moto's `moto_server` 5.2.5 (installed by
 * .ci/run through scripts/ci/install-moto.sh), on a free loopback port, owned by the test. Found
 * the way test/helpers/moto.ts finds it: `RUNFLEET_MOTO_SERVER`, then /opt/runfleet-moto/5.2.5,
 * then PATH. Missing: a loud skip, or a failure with CI=true (as requireOrSkip).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createServer } from 'node:net';
import { waitFor, onProcessEnd } from './processes.js';
import { findProgram } from './require-or-skip.js';
import type { Test } from 'tap';
import type { Teardownable } from './sshd.js';

export const MOTO_VERSION = '5.2.5';
const VENV_BIN = `/opt/runfleet-moto/${MOTO_VERSION}/bin/moto_server`;

export function findMotoServer(): string | undefined {
  for (const candidate of [process.env.RUNFLEET_MOTO_SERVER, VENV_BIN]) {
    if (!candidate) continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not there
    }
  }
  return findProgram('moto_server');
}

/** True when moto_server is there; otherwise fails on CI or skips loudly, and returns false. */
export function requireMotoOrSkip(t: Pick<Test, 'skip' | 'fail'>): boolean {
  if (findMotoServer()) return true;
  const message =
    `MISSING moto_server: S3 cache test not run. Install with: scripts/ci/install-moto.sh ` +
    `(moto[server]==${MOTO_VERSION}), or set RUNFLEET_MOTO_SERVER`;
  if (process.env.CI === 'true') t.fail(message);
  else {
    console.error(`\n!!!!!!!! ${message} !!!!!!!!\n`);
    void t.skip(message, () => undefined);
  }
  return false;
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Moto {
  /** `127.0.0.1:PORT`, as a cache block's `server_address` takes it. */
  address: string;
  endpoint: string;
  /** Every request line moto logged so far (method and path), for asserting what was called. */
  requests(): string[];
  stop(): Promise<void>;
}

export async function startMoto(t: Teardownable): Promise<Moto> {
  const bin = findMotoServer();
  if (!bin) throw new Error('moto_server is needed');
  const port = await freePort();
  const child: ChildProcess = spawn(bin, ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AWS_ACCESS_KEY_ID: 'unused', AWS_SECRET_ACCESS_KEY: 'unused' },
  });
  const log: string[] = [];
  const collect = (c: Buffer) => {
    for (const line of c.toString().split('\n')) {
      const m = /"(GET|PUT|POST|HEAD|DELETE) ([^ ]+) HTTP/.exec(line);
      if (m) log.push(`${m[1]} ${m[2]}`);
    }
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const unregister = onProcessEnd(() => child.kill('SIGKILL'));
  const endpoint = `http://127.0.0.1:${port}`;
  const up = await waitFor(
    async () => {
      try {
        return (await fetch(`${endpoint}/moto-api/`)).ok;
      } catch {
        return false;
      }
    },
    30_000,
    100,
  );
  if (!up) {
    child.kill('SIGKILL');
    unregister();
    throw new Error(`moto_server did not start on ${endpoint}`);
  }
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
    unregister();
  };
  t.teardown(stop);
  return { address: `127.0.0.1:${port}`, endpoint, requests: () => [...log], stop };
}
