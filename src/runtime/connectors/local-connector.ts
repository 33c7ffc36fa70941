/**
 * Runs commands as local processes in a `local` provider instance's sandbox directory
 * (`<stateDir>/local/<fleet>/<id>/work`). Each command is a process group of its own, so a cancel
 * kills the whole tree, and whatever a finished command left behind in its group is killed too.
 */
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { FleetError } from '../../errors.js';
import {
  DEFAULT_KILL_GRACE_MS,
  type Connector,
  type ExecOptions,
  type ExecResult,
  type SpawnedCommand,
  type SpawnOptions,
} from './connector.js';
import { systemTime, type TimerHandle, type Time } from '../../util/time.js';

export interface LocalConnectorOptions {
  /** The sandbox directory; created on first use. Commands start here unless `cwd` says otherwise. */
  workdir: string;
  /**
   * The environment every command starts from. Defaults to a minimal one (PATH, HOME, LANG, USER,
   * TMPDIR) so jobs do not inherit the manager's credentials.
   */
  baseEnv?: Record<string, string>;
  /** @default 2000 */
  killGraceMs?: number;
  /** Runs the SIGTERM → SIGKILL grace. @default systemTime */
  time?: Time;
}

function minimalEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of ['PATH', 'HOME', 'LANG', 'USER', 'TMPDIR']) {
    const v = process.env[key];
    if (v !== undefined) env[key] = v;
  }
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  return env;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

export class LocalConnector implements Connector {
  readonly description: string;
  private readonly baseEnv: Record<string, string>;
  private readonly killGraceMs: number;
  private readonly running = new Set<number>();

  constructor(private readonly opts: LocalConnectorOptions) {
    this.description = `local ${opts.workdir}`;
    this.baseEnv = opts.baseEnv ?? minimalEnv();
    this.killGraceMs = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  }

  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    if (opts.signal?.aborted) return { exitCode: null, aborted: true };
    const proc = await this.spawn(command, opts);
    proc.end(opts.stdin);
    return proc.done;
  }

  async spawn(command: string, opts: SpawnOptions = {}): Promise<SpawnedCommand> {
    await mkdir(this.opts.workdir, { recursive: true });
    const child = spawn('/bin/sh', ['-c', command], {
      cwd: opts.cwd ?? this.opts.workdir,
      env: { ...this.baseEnv, ...opts.env },
      // Its own process group: `kill(-pid)` then reaches every descendant that did not setsid.
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const pid = child.pid;
    let aborted = false;
    let killTimer: TimerHandle | undefined;
    const onAbort = (): void => {
      if (aborted || pid === undefined) return;
      aborted = true;
      killGroup(pid, 'SIGTERM');
      killTimer = (this.opts.time ?? systemTime).after(this.killGraceMs, () => killGroup(pid, 'SIGKILL'));
    };
    const done = new Promise<ExecResult>((resolve, reject) => {
      child.on('error', (err) => {
        opts.signal?.removeEventListener('abort', onAbort);
        reject(err);
      });
      if (pid === undefined) return;
      this.running.add(pid);
      if (opts.signal?.aborted) onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const sink = opts.stdoutStream;
      child.stdout.on('data', (c: Buffer) => {
        opts.onStdout?.(c);
        if (sink && !sink.write(c)) {
          child.stdout.pause();
          sink.once('drain', () => child.stdout.resume());
        }
      });
      child.stderr.on('data', (c: Buffer) => opts.onStderr?.(c));
      // EPIPE when the command exits without reading its stdin is not a failure.
      child.stdin.on('error', () => undefined);
      // The leader exited: kill what it left in its group, or their open pipes would hold `close`.
      child.on('exit', () => killGroup(pid, 'SIGKILL'));
      child.on('close', (code, sig) => {
        killTimer?.cancel();
        this.running.delete(pid);
        opts.signal?.removeEventListener('abort', onAbort);
        resolve({
          exitCode: code,
          ...(sig ? { signal: sig } : {}),
          ...(aborted ? { aborted: true } : {}),
        });
      });
    });
    done.catch(() => undefined);
    return {
      write: (data) => void child.stdin.write(data),
      end: (data) => void child.stdin.end(data ?? ''),
      stdin: child.stdin,
      kill: onAbort,
      done,
    };
  }

  openUnixStream(socketPath: string): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const socket = connect(socketPath);
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (err) =>
        reject(
          new FleetError('SSH_CONNECT', `cannot reach ${socketPath}: ${err.message}`, { retryable: true }),
        ),
      );
    });
  }

  openTcpStream(host: string, port: number): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (err) =>
        reject(new FleetError('SSH_CONNECT', `cannot reach ${host}:${port}: ${err.message}`)),
      );
    });
  }

  /** Kills every command still running. */
  async close(): Promise<void> {
    for (const pid of this.running) killGroup(pid, 'SIGKILL');
    this.running.clear();
  }
}
