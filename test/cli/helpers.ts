/** Runs the real CLI binary (compiled dist, built by `npm test` before tap) in a temp directory. */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';

export const BIN = resolve(import.meta.dirname, '../../bin/runfleet.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(
  cwd: string,
  args: string[],
  opts: { env?: Record<string, string>; input?: string } = {},
) {
  return new Promise<CliResult>((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: '1', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

export const LOCAL_FLEETS = `# two small local fleets
name: alpha
provider: { type: local }
capacity_per_instance: 2
max_instances: 3
policy:
  - idle_count: 4
    idle_time: 20m
---
name: beta
provider: { type: local }
max_instances: 2
policy:
  - idle_count: 1
`;

/** Polls `fn` until it returns something other than undefined (errors count as not yet). */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface SpawnedManager {
  child: ChildProcess;
  /** What it wrote so far (empty when its output goes to a file). */
  stdout(): string;
  stderr(): string;
  /** host:port of its metrics and status, once it said so. */
  address(): string | undefined;
}

/**
 * Starts `runfleet watch` in `dir` on the PostgreSQL store `url`, with the lease rhythm shortened
 * (renew 300 ms, TTL 1.5 s) as the several-managers tests run it. `log`: a file descriptor that
 * gets both its outputs instead of keeping them; `env`: more environment (GitLab tokens).
 */
export function spawnManager(
  dir: string,
  url: string,
  opts: { grace?: string; log?: number; env?: Record<string, string> } = {},
): SpawnedManager {
  const child = spawn(
    process.execPath,
    [
      BIN,
      'watch',
      '--listen',
      '127.0.0.1:0',
      '--interval',
      '1s',
      '--grace',
      opts.grace ?? '2s',
      '--state',
      url,
    ],
    {
      cwd: dir,
      env: {
        ...process.env,
        NO_COLOR: '1',
        RUNFLEET_LEASE_RENEW_MS: '300',
        RUNFLEET_LEASE_TTL_MS: '1500',
        ...opts.env,
      },
      stdio: opts.log === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', opts.log, opts.log],
    },
  );
  let out = '';
  let err = '';
  let address: string | undefined;
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
    address ??= /metrics and status on http:\/\/(\S+);/.exec(err)?.[1];
  });
  return { child, stdout: () => out, stderr: () => err, address: () => address };
}

/** A manager's metric without labels (e.g. `runfleet_leases_held`), once it serves them. */
export async function managerMetric(m: SpawnedManager, name: string): Promise<number | undefined> {
  const address = m.address();
  if (!address) return undefined;
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

/**
 * Waits until no manager of `managers` holds a lease (its database gone, its leases run out). On a
 * timeout the error carries what was seen: the last metric read (or why it could not be read) and
 * the manager's last lease log lines, so a failure in CI can be read without a re-run.
 */
export async function untilNoLeaseHeld(managers: readonly SpawnedManager[]): Promise<void> {
  for (const [i, m] of managers.entries()) {
    let seen = 'never read';
    try {
      await until(
        `manager ${i} holds no lease`,
        async () => {
          const held = await managerMetric(m, 'runfleet_leases_held').catch((e: unknown) => {
            seen = `metrics unreadable: ${e instanceof Error ? e.message : String(e)}`;
            throw e;
          });
          seen = `runfleet_leases_held ${held}`;
          return held === 0 ? true : undefined;
        },
        60_000,
      );
    } catch (e) {
      const lines = (m.stdout() + m.stderr()).split('\n').filter((l) => /lease|pass|error/i.test(l));
      throw new Error(
        `${(e as Error).message} (last seen: ${seen}; exit ${m.child.exitCode ?? m.child.signalCode ?? 'none'})\n` +
          lines.slice(-40).join('\n'),
        { cause: e },
      );
    }
  }
}

/** Lease rounds a manager logged as failed so far. */
const leaseRoundsFailed = (m: SpawnedManager) => m.stdout().split('lease round failed').length - 1;

/** Waits until every manager of `managers` has logged `n` more failed lease rounds than now. */
export async function untilLeaseRoundsFail(managers: readonly SpawnedManager[], n: number): Promise<void> {
  const then = managers.map(leaseRoundsFailed);
  for (const [i, m] of managers.entries()) {
    await until(
      `manager ${i} failed ${n} more lease rounds`,
      async () => (leaseRoundsFailed(m) >= then[i]! + n ? true : undefined),
      60_000,
    );
  }
}
