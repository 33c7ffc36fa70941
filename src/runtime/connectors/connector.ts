/**
 * The connector seam: how the runtime runs a command on an instance and reaches a socket on it,
 * whatever the instance is (a local sandbox directory, an SSH host). Executors build on this.
 *
 * Contracts every implementation keeps:
 * - `exec` runs `command` with a POSIX `sh` on the instance and resolves once the command has
 *   exited and its output has been delivered; `exitCode` is null when a signal ended it.
 * - When `signal` aborts, the whole process tree the command started is killed (TERM, then KILL
 *   after a grace period) and `exec` resolves with `aborted: true`. Nothing the command started is
 *   left running on the instance.
 * - `exec` rejects only when the instance itself fails (cannot be reached, the connection drops
 *   mid-command): a `FleetError` with code `SSH_CONNECT`, which callers report as
 *   `runner_system_failure`. A command that fails is not an error: it is a non-zero `exitCode`.
 * - Secrets (private keys, the stdin of a command) never appear in errors or logs.
 * - `spawn` is `exec` with a stdin that stays open: the caller writes to it as the command runs
 *   (a shell reading one job's stage scripts). The same kill and failure rules apply.
 * - `close` is idempotent and never throws.
 * - Bulk bytes (archives, runtime/transfer) keep backpressure both ways: a `stdoutStream` that is
 *   full pauses the command's output (SSH stops widening its window, a pipe stops being read), and
 *   `SpawnedCommand.stdin` accepts writes only as fast as the command reads them.
 */
import type { Duplex, Writable } from 'node:stream';

export interface ExecOptions {
  /** Written to the command's stdin, which is then closed. Without it stdin is closed at once. */
  stdin?: string | Buffer;
  /** Extra environment variables for the command. */
  env?: Record<string, string>;
  /** Working directory; defaults to the connector's own (local: the sandbox, SSH: the home dir). */
  cwd?: string;
  onStdout?: (chunk: Buffer) => void;
  /**
   * Receives stdout with backpressure: the command's output is paused while `write` returns false,
   * until the stream drains. Never ended by the connector (`done` tells when output is complete).
   */
  stdoutStream?: Writable;
  onStderr?: (chunk: Buffer) => void;
  signal?: AbortSignal;
}

export interface ExecResult {
  /** Exit code, or null if the process was ended by a signal. */
  exitCode: number | null;
  /** The signal that ended it, e.g. `SIGKILL`, when known. */
  signal?: string;
  /** True when `opts.signal` aborted the command and the connector killed it. */
  aborted?: boolean;
}

/** Options of `spawn`: `exec`'s without `stdin`, which the caller writes itself. */
export type SpawnOptions = Omit<ExecOptions, 'stdin'>;

/** A command started by `spawn`. */
export interface SpawnedCommand {
  /** Writes to the command's stdin. */
  write(data: string | Buffer): void;
  /** Closes the command's stdin, after writing `data` if given. */
  end(data?: string | Buffer): void;
  /** The command's stdin as a stream with backpressure; ending it closes stdin. */
  readonly stdin: Writable;
  /** Kills the command's whole process tree (TERM, KILL after the grace); `done` then resolves aborted. */
  kill(): void;
  /** Resolves or rejects as `exec` would. */
  readonly done: Promise<ExecResult>;
}

export interface Connector {
  /** For logs: e.g. `ssh root@127.0.0.7:2222` or `local /state/local/f/id/work`. No secrets. */
  readonly description: string;
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  /** Starts `command` with an open stdin; rejects only as `exec` does (the instance failed). */
  spawn(command: string, opts?: SpawnOptions): Promise<SpawnedCommand>;
  /**
   * A byte stream to a Unix socket on the instance (the Docker daemon's), for as long as the
   * caller keeps it open. Rejects with `SSH_CONNECT` if the socket cannot be reached.
   */
  openUnixStream?(socketPath: string): Promise<Duplex>;
  /**
   * A TCP connection made from the instance to `host:port` (a container's address on a Docker
   * network of the instance). Rejects when the connection is refused or cannot be made.
   */
  openTcpStream?(host: string, port: number): Promise<Duplex>;
  /** Ends the connection; commands still running are killed or cut off. Idempotent. */
  close(): Promise<void>;
}

/** How long a killed command gets between TERM and KILL. */
export const DEFAULT_KILL_GRACE_MS = 2000;
