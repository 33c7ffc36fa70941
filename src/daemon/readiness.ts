/**
 * Instance readiness: a new instance takes jobs only after a heartbeat and the fleet's
 * `instance_ready_command` succeed (so jobs never land before cloud-init is done). Running the
 * command needs a connector, hence the injected `ReadinessProbe`; the default one runs it for the
 * `local` provider in the sandbox's work directory. `runfleet watch` passes the job runtime's connector probe.
 *
 * Failures back off per fleet (`ReadinessBackoff`): a fleet whose instances keep failing stops
 * creating new ones for a growing while, instead of the create/delete loop of taskscaler#26.
 */
import { spawn } from 'node:child_process';
import type { Fleet } from '../model/fleet.js';
import type { ConnectInfo } from '../providers/provider.js';

export interface ProbeResult {
  ok: boolean;
  /** The command's output, truncated; shown in logs. Never contains connect credentials. */
  output?: string;
}

/** Runs `fleet.instance_ready_command` on one instance. Must honour `signal` (timeout, shutdown). */
export type ReadinessProbe = (
  fleet: Fleet,
  instanceId: string,
  connectInfo: ConnectInfo,
  signal: AbortSignal,
) => Promise<ProbeResult>;

const MAX_OUTPUT = 2000;

/**
 * The probe of a daemon built without the job runtime (tests, simulations): `local` instances run
 * the command with `sh -c` in `connectInfo.workdir`; other protocols fail with a message saying so
 * rather than pretending the instance is ready. `runfleet watch` injects the runtime's
 * `connectorReadinessProbe` instead, which runs the command over SSH as well.
 */
export const localReadinessProbe: ReadinessProbe = (fleet, _id, info, signal) => {
  const command = fleet.instance_ready_command;
  if (!command) return Promise.resolve({ ok: true });
  if (info.protocol !== 'local' || !info.workdir) {
    return Promise.resolve({
      ok: false,
      output: `instance_ready_command over ${info.protocol} needs the job runtime's connectors (runfleet watch provides them)`,
    });
  }
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', command], {
      cwd: info.workdir,
      signal,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const collect = (d: Buffer) => {
      if (output.length < MAX_OUTPUT) output += d.toString('utf8');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', (e) => resolve({ ok: false, output: `${output}${e.message}`.slice(0, MAX_OUTPUT) }));
    child.on('close', (code) => resolve({ ok: code === 0, output: output.slice(0, MAX_OUTPUT) }));
  });
};

export interface BackoffOptions {
  /** First pause after a failure. @default 10_000 */
  baseMs?: number;
  /** Longest pause. @default 600_000 */
  maxMs?: number;
}

/**
 * Per-fleet exponential backoff on readiness failures: after n consecutive failures, no new
 * instance is created for `min(base × 2^(n−1), max)`. A success resets it.
 */
export class ReadinessBackoff {
  private readonly state = new Map<string, { failures: number; until: number }>();
  private readonly baseMs: number;
  private readonly maxMs: number;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? 10_000;
    this.maxMs = opts.maxMs ?? 600_000;
  }

  /** Records a failure at `nowMs`; returns the pause it starts, in ms. */
  failed(fleet: string, nowMs: number): number {
    const failures = (this.state.get(fleet)?.failures ?? 0) + 1;
    const pause = Math.min(this.maxMs, this.baseMs * 2 ** (failures - 1));
    this.state.set(fleet, { failures, until: nowMs + pause });
    return pause;
  }

  succeeded(fleet: string): void {
    this.state.delete(fleet);
  }

  /** When creation may resume (epoch ms), or undefined when the fleet is not backing off. */
  blockedUntil(fleet: string, nowMs: number): number | undefined {
    const s = this.state.get(fleet);
    return s && s.until > nowMs ? s.until : undefined;
  }

  failures(fleet: string): number {
    return this.state.get(fleet)?.failures ?? 0;
  }
}

/**
 * Token bucket for `scale_throttle` (GitLab's, default 100/s burst 100): how many instances may be
 * requested now. Tokens refill continuously at `limit` per second up to `burst`.
 */
export class CreationThrottle {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  /** Takes up to `want` tokens; returns how many were granted. */
  take(fleet: string, spec: Fleet['scale_throttle'], want: number, nowMs: number): number {
    const burst = Math.max(1, spec.burst);
    const b = this.buckets.get(fleet) ?? { tokens: burst, at: nowMs };
    b.tokens = Math.min(burst, b.tokens + ((nowMs - b.at) / 1000) * Math.max(0, spec.limit));
    b.at = nowMs;
    const granted = Math.max(0, Math.min(want, Math.floor(b.tokens)));
    b.tokens -= granted;
    this.buckets.set(fleet, b);
    return granted;
  }

  /** Milliseconds until one more token is available. */
  msUntilNext(fleet: string, spec: Fleet['scale_throttle']): number {
    const b = this.buckets.get(fleet);
    if (!b || b.tokens >= 1 || spec.limit <= 0) return 0;
    return Math.ceil(((1 - b.tokens) / spec.limit) * 1000);
  }
}
