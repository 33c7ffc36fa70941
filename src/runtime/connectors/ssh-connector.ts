/**
 * Runs commands on an instance over SSH (ssh2): one channel per command, keepalives, a connect
 * timeout, and the host key pinned on first contact.
 *
 * Session limits: sshd allows `MaxSessions` session channels per connection (OpenSSH's default is
 * 10) and refuses one more with `open failed`. A connection here opens at most `maxSessions`
 * (default 10) at once and learns a lower limit from a refusal; when every connection is full a
 * new one is dialled (up to `maxConnections`), and otherwise the command waits for a free session.
 * A refused channel open is retried with backoff on another connection, never reported as the
 * instance failing, so more slots than `MaxSessions` on one instance lose no job.
 *
 * Connections that cannot be established: nothing of the command ran yet, so a dial that fails
 * (handshake timeout, a reset or close before the key exchange) is retried with jittered
 * exponential backoff on a new connection (`connectRetries` times; GitLab Runner's SSH client
 * retries a dial 3 times, its job preparation 3 times more). So is a command whose connection
 * dropped before its channel was confirmed (the command gets a new tag; the old one is killed on
 * the next connection, in case its exec had reached sshd). At most `maxHandshakes` dials to one
 * instance are in progress at once: sshd drops unauthenticated connections beyond `MaxStartups`
 * (OpenSSH's default `10:30:100` starts dropping at 10), and a connection it closes before the
 * key exchange while others are being dialled lowers that limit for the instance. A refused or
 * unreachable address is not retried: nothing listens there (the instance died), and a job whose
 * instance died fails as a system failure at once instead of after every stage's backoff.
 *
 * Killing a remote command: sshd starts every non-pty command in a session of its own (OpenSSH's
 * `do_exec_no_pty` calls `setsid`), so the login shell running our wrapper is the leader of a
 * process group holding everything the command starts. The wrapper prints that pid on its first
 * output line; a cancel then runs `kill -TERM -<pid>` (later `-KILL`) over a second channel. Closing
 * the channel alone would not do it: without a pty, sshd sends no SIGHUP.
 *
 * For the same reason a command whose connection is lost (sshd killed, network gone) keeps running
 * on the host. Each command runs with a random `RUNFLEET_EXEC_TAG` in its environment, which every
 * process it starts inherits (also one it `exec`s into, or one that left its process group); the
 * connector remembers the tags of commands whose connection was lost and, when it next connects to
 * that host, kills every process carrying one (Linux `/proc`) before anything else runs there. A
 * process that merely reuses a pid is never touched.
 */
import { randomUUID } from 'node:crypto';
import { connect as connectTcp, type Socket } from 'node:net';
import { Writable, type Duplex } from 'node:stream';
import { Client, type ClientChannel } from 'ssh2';
import { FleetError, isFleetError } from '../../errors.js';
import { shellQuote } from '../script/shell-quote.js';
import {
  DEFAULT_KILL_GRACE_MS,
  type Connector,
  type ExecOptions,
  type ExecResult,
  type SpawnedCommand,
  type SpawnOptions,
} from './connector.js';
import type { HostKeyVerdict, KnownHostsFile } from './known-hosts.js';
import { asSocketLike } from './socket-like.js';
import { systemTime, type TimerHandle, type Time } from '../../util/time.js';

export interface SshTarget {
  host: string;
  port: number;
  username: string;
  /** PEM or OpenSSH private key. Never logged. */
  privateKey: string | Buffer;
  /**
   * What the host key is pinned under. @default `host:port`. The runtime passes
   * `<instance id>@host:port`, so a new instance that reuses a removed one's address (common on
   * AWS) is trusted on its own first contact instead of refused.
   */
  pinAs?: string;
  /** The fleet's `connector.max_sessions`. @default the pool's `maxSessions` */
  maxSessions?: number;
}

export interface SshConnectorOptions {
  knownHosts: KnownHostsFile;
  /** @default 10000 */
  connectTimeoutMs?: number;
  /** @default 15000 */
  keepaliveIntervalMs?: number;
  /** Missed keepalives before the connection counts as lost. @default 3 */
  keepaliveCountMax?: number;
  /** @default 2000 */
  killGraceMs?: number;
  /**
   * Session channels open at once on one connection: keep it at or under the server's
   * `MaxSessions`. A refusal lowers it for that connection. @default 10 (OpenSSH's default)
   */
  maxSessions?: number;
  /** Connections to one instance when sessions overflow one. @default 8 */
  maxConnections?: number;
  /** Retries of a refused channel open before the command fails. @default 8 */
  channelRetries?: number;
  /** Retries of a dial that failed (or a connection lost before the channel opened). @default 6 */
  connectRetries?: number;
  /** Dials (SSH handshakes) in progress at once to one instance. @default 3 */
  maxHandshakes?: number;
  /** Runs the TERM → KILL grace and the retry backoff. @default systemTime */
  time?: Time;
}

/** OpenSSH's `MaxSessions` default. */
export const DEFAULT_MAX_SESSIONS = 10;
const DEFAULT_MAX_CONNECTIONS = 8;
const DEFAULT_CONNECT_RETRIES = 6;
const DEFAULT_MAX_HANDSHAKES = 3;
/**
 * Whether a failed dial is worth another: a handshake that timed out on a busy manager, or a
 * connection sshd reset or closed before the key exchange (MaxStartups), are passing; a refused or
 * unreachable address is not (sshd is not listening: the instance is down or gone, and waiting
 * for it is the readiness probe's and the health checker's job, not a running job's), and neither
 * is a host key that differs from its pin.
 */
function dialWorthRetrying(e: unknown): boolean {
  if (!isFleetError(e) || e.code !== 'SSH_CONNECT') return false;
  const code = (e.cause as NodeJS.ErrnoException | undefined)?.code;
  return code !== 'ECONNREFUSED' && code !== 'EHOSTUNREACH' && code !== 'ENETUNREACH';
}

/** Backoff before the n-th retry of a dial (0-based): 250 ms doubling to 5 s, ±50 % jitter. */
function dialBackoffMs(attempt: number): number {
  return Math.min(5000, 250 * 2 ** attempt) * (0.5 + Math.random());
}
const PID_MARKER = '__runfleet_pid=';

/** Filled by the channel's `exit` event: the command's exit code, or the signal that ended it. */
interface ExitRecord {
  status?: { code: number | null; signal?: string };
}

/** One SSH connection and the session channels open on it. */
interface Connection {
  client: Promise<Client>;
  /** Sessions open or being opened. */
  open: number;
  /** Sessions this connection may hold; lowered when the server refuses one. */
  limit: number;
  lost: boolean;
  /** Fails the in-flight commands of this connection when it drops. */
  inFlight: Set<(err: FleetError) => void>;
  /** The client from the moment it dials: `close` must reach a pending handshake too. */
  raw?: Client;
  /** Resolves when `raw`'s socket has closed. */
  closed?: Promise<void>;
}

/** ssh2's error for a channel the server refused (`SSH_MSG_CHANNEL_OPEN_FAILURE`). */
function isChannelRefused(err: Error): boolean {
  return /open failure|open failed|administratively prohibited/i.test(err.message);
}

export class SshConnector implements Connector {
  readonly description: string;
  private readonly hostPort: string;
  private readonly connections: Connection[] = [];
  /** Commands waiting for a session when every connection is full. */
  private readonly waiting: (() => void)[] = [];
  /** Sessions a new connection may hold (`connector.max_sessions`). */
  maxSessions: number;
  /** The server's limit as learned from a refusal on any connection (sshd's MaxSessions is per server). */
  private learnedSessions = Infinity;
  private closed = false;
  /** Tags of commands whose connection was lost: their processes are killed on the next connection. */
  private leftBehind: string[] = [];
  /** Dials in progress, and those waiting for one of the `handshakeLimit` places. */
  private dialing = 0;
  private readonly dialQueue: (() => void)[] = [];
  /** Handshakes at once to this instance; lowered when sshd drops one early (`MaxStartups`). */
  handshakeLimit: number;

  constructor(
    private readonly target: SshTarget,
    private readonly opts: SshConnectorOptions,
  ) {
    this.hostPort = target.pinAs ?? `${target.host}:${target.port}`;
    this.description = `ssh ${target.username}@${target.host}:${target.port}`;
    this.maxSessions = Math.max(1, target.maxSessions ?? opts.maxSessions ?? DEFAULT_MAX_SESSIONS);
    this.handshakeLimit = Math.max(1, opts.maxHandshakes ?? DEFAULT_MAX_HANDSHAKES);
  }

  private get time(): Time {
    return this.opts.time ?? systemTime;
  }

  /** Connects now (it happens lazily otherwise); rejects with SSH_CONNECT or SSH_HOSTKEY. */
  async connect(): Promise<void> {
    await this.firstConnection().client;
  }

  /** Connections currently open (or being opened) to the instance. */
  get connectionCount(): number {
    return this.connections.length;
  }

  private firstConnection(): Connection {
    return this.connections.find((c) => !c.lost) ?? this.newConnection();
  }

  private newConnection(): Connection {
    const conn: Connection = {
      client: Promise.resolve(undefined as unknown as Client),
      open: 0,
      limit: Math.min(this.maxSessions, this.learnedSessions),
      lost: false,
      inFlight: new Set(),
    };
    if (this.closed) {
      conn.client = Promise.reject(new FleetError('SSH_CONNECT', `${this.description}: connector closed`));
      conn.client.catch(() => undefined);
      return conn;
    }
    conn.client = this.dialInTurn(conn);
    // A failed dial is seen by whoever awaits it; never an unhandled rejection.
    conn.client.catch(() => undefined);
    this.connections.push(conn);
    return conn;
  }

  private forget(conn: Connection): void {
    conn.lost = true;
    const i = this.connections.indexOf(conn);
    if (i >= 0) this.connections.splice(i, 1);
    this.wake();
  }

  private wake(): void {
    const next = this.waiting.shift();
    next?.();
  }

  /** Dials once fewer than `handshakeLimit` handshakes to the instance are in progress. */
  private async dialInTurn(conn: Connection): Promise<Client> {
    while (this.dialing >= this.handshakeLimit) {
      await new Promise<void>((resolve) => this.dialQueue.push(resolve));
      if (this.closed) throw new FleetError('SSH_CONNECT', `${this.description}: connector closed`);
    }
    this.dialing++;
    try {
      return await this.dial(conn);
    } finally {
      this.dialing--;
      this.dialQueue.shift()?.();
    }
  }

  private dial(conn: Connection): Promise<Client> {
    return new Promise<Client>((resolve, reject) => {
      const client = new Client();
      conn.raw = client;
      conn.closed = new Promise((r) => client.once('close', () => r()));
      let verdict: HostKeyVerdict | undefined;
      let ready = false;
      let keyExchanged = false;
      client.once('handshake', () => (keyExchanged = true));
      let failed = false;
      /** The dial failed (first of `error` and `close`); learns from sshd dropping it early. */
      const failDial = (err: Error): void => {
        if (failed) return;
        failed = true;
        // Closed or reset before the key exchange while other dials ran: sshd's MaxStartups.
        const early =
          /Connection lost before handshake|closed during handshake/.test(err.message) ||
          (err as NodeJS.ErrnoException).code === 'ECONNRESET';
        if (!keyExchanged && early && this.dialing > 1) {
          this.handshakeLimit = Math.max(1, Math.min(this.handshakeLimit, this.dialing - 1));
        }
        this.forget(conn);
        reject(this.connectError(err, verdict));
      };
      const dropped = (why: string): void => {
        this.forget(conn);
        const err = new FleetError('SSH_CONNECT', `${this.description}: connection lost (${why})`, {
          retryable: true,
        });
        for (const fail of [...conn.inFlight]) fail(err);
      };
      client.on('ready', () => {
        ready = true;
        // Commands are small request/response exchanges: without TCP_NODELAY, Nagle plus the
        // peer's delayed ACK add ~40 ms to about half of them (measured by bench/dispatch).
        client.setNoDelay(true);
        void this.reapLeftBehind(client).then(() => resolve(client));
      });
      client.on('error', (err: Error) => (ready ? dropped(err.message) : failDial(err)));
      client.on('close', () =>
        ready ? dropped('closed') : failDial(new Error('connection closed during handshake')),
      );
      const sock = connectTcp({ host: this.target.host, port: this.target.port });
      coalesceWrites(sock);
      client.connect({
        sock,
        host: this.target.host,
        port: this.target.port,
        username: this.target.username,
        privateKey: this.target.privateKey,
        readyTimeout: this.opts.connectTimeoutMs ?? 10_000,
        keepaliveInterval: this.opts.keepaliveIntervalMs ?? 15_000,
        keepaliveCountMax: this.opts.keepaliveCountMax ?? 3,
        hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
          this.opts.knownHosts.check(this.hostPort, key).then(
            (v) => {
              verdict = v;
              verify(v !== 'mismatch');
            },
            () => verify(false),
          );
        },
      });
    });
  }

  /** Kills what lost connections left running; never fails the connection it runs on. */
  private reapLeftBehind(client: Client): Promise<void> {
    const left = this.leftBehind.splice(0);
    if (left.length === 0) return Promise.resolve();
    const wanted = left.map((tag) => `RUNFLEET_EXEC_TAG=${tag}`).join('|');
    const script =
      `for d in /proc/[0-9]*; do ` +
      `if tr '\\0' '\\n' < "$d/environ" 2>/dev/null | grep -qxE '${wanted}'; then kill -KILL "\${d#/proc/}" 2>/dev/null; fi; ` +
      `done`;
    return new Promise((done) => {
      client.exec(`${script}; true`, (err, ch) => {
        if (err) return done();
        ch.on('close', () => done());
        ch.resume();
        ch.stderr.resume();
        ch.end();
      });
    });
  }

  private connectError(err: Error, verdict: HostKeyVerdict | undefined): FleetError {
    if (verdict === 'mismatch') {
      return new FleetError(
        'SSH_HOSTKEY',
        `${this.description}: host key differs from the one pinned on first contact`,
        {
          hint:
            `if the instance was replaced and its address reused, remove "${this.hostPort}" from ` +
            `${this.opts.knownHosts.path}; otherwise something else answers at this address`,
        },
      );
    }
    return new FleetError('SSH_CONNECT', `${this.description}: cannot connect: ${err.message}`, {
      retryable: true,
      hint: 'check that the instance is up, sshd listens on that port and the key is authorized',
      cause: err,
    });
  }

  /**
   * A connection with a free session, counted as taken: the first one under its limit, else a
   * new connection, else (all `maxConnections` full) the first one freed.
   */
  private async takeSession(): Promise<Connection> {
    for (;;) {
      if (this.closed) throw new FleetError('SSH_CONNECT', `${this.description}: connector closed`);
      let conn = this.connections.find((c) => !c.lost && c.open < c.limit);
      if (!conn && this.connections.length < (this.opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS)) {
        conn = this.newConnection();
      }
      if (conn) {
        conn.open++;
        return conn;
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private releaseSession(conn: Connection): void {
    conn.open = Math.max(0, conn.open - 1);
    this.wake();
  }

  /**
   * Opens an exec channel on a connection with a free session, retrying a refused open with
   * backoff (on another connection once this one counts as full), and a dial that failed or a
   * connection lost before the channel was confirmed on a new connection. `build` makes the
   * command for a tag (`RUNFLEET_EXEC_TAG`), new for each attempt: an attempt whose connection was
   * lost is killed by its tag on the next connection, in case its exec reached sshd. The exit
   * status is recorded by a listener attached in the same tick the channel arrives: a short
   * command's data, exit-status and close can come in the same TCP read as the channel
   * confirmation, and ssh2 emits `exit` (a plain event) synchronously, before an awaiting caller
   * could listen.
   */
  private async channel(
    build: (tag: string) => string,
  ): Promise<{ ch: ClientChannel; exit: ExitRecord; conn: Connection; tag: string }> {
    const retries = this.opts.channelRetries ?? 8;
    const connectRetries = this.opts.connectRetries ?? DEFAULT_CONNECT_RETRIES;
    let refusals = 0;
    let connectFailures = 0;
    for (;;) {
      const conn = await this.takeSession();
      let client: Client;
      try {
        client = await conn.client;
      } catch (e) {
        this.releaseSession(conn);
        // Nothing ran yet: a dial that failed (a handshake timed out on a busy manager, sshd
        // dropped it) is tried again on a new connection; a pinned host key that differs never is.
        if (!dialWorthRetrying(e) || connectFailures >= connectRetries || this.closed) throw e;
        await this.time.sleep(dialBackoffMs(connectFailures++));
        continue;
      }
      // 16 hex digits (64 random bits) from the buffered UUID pool, not a call into the system's
      // random source per command.
      const tag = randomUUID().replaceAll('-', '').slice(0, 16);
      const opened = await new Promise<{ ch: ClientChannel; exit: ExitRecord } | Error>((resolve) => {
        try {
          client.exec(build(tag), (err, ch) => {
            if (err) return resolve(err);
            const exit: ExitRecord = {};
            skipEndAfterFinish(ch);
            ch.once('exit', (code: number | null, signal?: string) => {
              exit.status = { code, ...(signal ? { signal: `SIG${signal}` } : {}) };
            });
            resolve({ ch, exit });
          });
        } catch (e) {
          // ssh2 throws "Not connected" when the socket closed after the connection was taken.
          resolve(e as Error);
        }
      });
      if (!(opened instanceof Error)) {
        opened.ch.once('close', () => this.releaseSession(conn));
        return { ...opened, conn, tag };
      }
      this.releaseSession(conn);
      if (conn.lost) {
        // The connection went before the channel was confirmed: retry on a new one.
        this.leftBehind.push(tag);
        if (connectFailures >= connectRetries || this.closed) {
          throw new FleetError('SSH_CONNECT', `${this.description}: connection lost: ${opened.message}`, {
            retryable: true,
            cause: opened,
          });
        }
        await this.time.sleep(dialBackoffMs(connectFailures++));
        continue;
      }
      const refused = isChannelRefused(opened);
      if (refused) {
        // The server holds fewer sessions than we thought: learn its limit for this connection.
        conn.limit = Math.max(1, Math.min(conn.limit, conn.open));
        this.learnedSessions = Math.min(this.learnedSessions, conn.limit);
      }
      if (!refused || refusals >= retries) {
        throw new FleetError('SSH_CONNECT', `${this.description}: cannot open a channel: ${opened.message}`, {
          retryable: true,
          hint: refused
            ? "the server refused a session: raise sshd's MaxSessions or lower connector.max_sessions"
            : undefined,
          cause: opened,
        });
      }
      await this.time.sleep(Math.min(1000, 10 * 2 ** refusals++));
    }
  }

  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    if (opts.signal?.aborted) return { exitCode: null, aborted: true };
    const proc = await this.spawn(command, opts);
    proc.end(opts.stdin);
    return proc.done;
  }

  async spawn(command: string, opts: SpawnOptions = {}): Promise<SpawnedCommand> {
    // sshd only passes variables its AcceptEnv allows: export them in the command instead.
    const env = Object.entries(opts.env ?? {})
      .map(([k, v]) => `export ${k}=${shellQuote(v)}; `)
      .join('');
    const cd = opts.cwd ? `cd ${shellQuote(opts.cwd)} && ` : '';
    const {
      ch,
      exit: exitRecord,
      conn,
      tag,
    } = await this.channel(
      (tag) => `printf '${PID_MARKER}%s\\n' "$$"; export RUNFLEET_EXEC_TAG=${tag}; ${env}${cd}${command}`,
    );

    let pid: number | undefined;
    let head: Buffer = Buffer.alloc(0);
    let aborted = false;
    let killTimer: TimerHandle | undefined;
    const kill = (sig: 'TERM' | 'KILL'): void => {
      if (pid === undefined) return;
      this.exec(`kill -${sig} -- -${pid} 2>/dev/null || kill -${sig} ${pid} 2>/dev/null; true`).catch(
        () => undefined,
      );
    };
    const onAbort = (): void => {
      if (aborted) return;
      aborted = true;
      kill('TERM');
      killTimer = this.time.after(this.opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS, () => {
        kill('KILL');
        ch.close();
      });
    };
    let fail: (err: FleetError) => void = () => undefined;
    const done = new Promise<ExecResult>((resolve, reject) => {
      const finish = (): void => {
        killTimer?.cancel();
        conn.inFlight.delete(fail);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      // Only a lost connection calls this: the command may live on, so it is killed on reconnect.
      fail = (err: FleetError): void => {
        finish();
        this.leftBehind.push(tag);
        reject(err);
      };
      conn.inFlight.add(fail);
      opts.signal?.addEventListener('abort', onAbort, { once: true });

      const deliver = (chunk: Buffer): void => {
        opts.onStdout?.(chunk);
        const sink = opts.stdoutStream;
        if (sink && !sink.write(chunk)) {
          ch.pause();
          sink.once('drain', () => ch.resume());
        }
      };
      ch.on('data', (chunk: Buffer) => {
        if (pid !== undefined) return deliver(chunk);
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const nl = head.indexOf(0x0a);
        if (nl < 0) return;
        const line = head.subarray(0, nl).toString();
        pid = line.startsWith(PID_MARKER) ? Number(line.slice(PID_MARKER.length)) : -1;
        const rest = head.subarray(nl + 1);
        if (rest.length > 0) deliver(rest);
        // Aborted before we knew whom to kill.
        if (aborted) kill('TERM');
      });
      ch.stderr.on('data', (chunk: Buffer) => opts.onStderr?.(chunk));
      ch.on('close', () => {
        if (!conn.inFlight.has(fail)) return;
        finish();
        const exit = exitRecord.status;
        if (exit === undefined && !aborted) {
          reject(
            new FleetError('SSH_CONNECT', `${this.description}: command ended without an exit status`, {
              retryable: true,
            }),
          );
          return;
        }
        resolve({
          exitCode: exit?.code ?? null,
          ...(exit?.signal ? { signal: exit.signal } : {}),
          ...(aborted ? { aborted: true } : {}),
        });
      });
    });
    // Callers that never await `done` (they killed the command) must not see a rejection.
    done.catch(() => undefined);
    return {
      write: (data) => void ch.write(data),
      end: (data) => void ch.end(data ?? ''),
      stdin: channelStdin(ch),
      kill: onAbort,
      done,
    };
  }

  async openUnixStream(socketPath: string): Promise<Duplex> {
    const client = await this.firstConnection().client;
    return new Promise((resolve, reject) => {
      client.openssh_forwardOutStreamLocal(socketPath, (err, ch) =>
        err
          ? reject(
              new FleetError(
                'SSH_CONNECT',
                `${this.description}: cannot open ${socketPath}: ${err.message}`,
                {
                  hint: 'the instance needs the socket and sshd needs AllowStreamLocalForwarding yes',
                  cause: err,
                },
              ),
            )
          : resolve(asSocketLike(ch)),
      );
    });
  }

  async openTcpStream(host: string, port: number): Promise<Duplex> {
    const client = await this.firstConnection().client;
    return new Promise((resolve, reject) => {
      // sshd dials from the instance (direct-tcpip); a refused port fails the channel open.
      client.forwardOut('127.0.0.1', 0, host, port, (err, ch) =>
        err
          ? reject(
              new FleetError(
                'SSH_CONNECT',
                `${this.description}: cannot reach ${host}:${port}: ${err.message}`,
              ),
            )
          : resolve(asSocketLike(ch)),
      );
    });
  }

  /**
   * Destroys the socket at once and resolves once it is closed. `end()` would half-close it and
   * wait for the peer, which a frozen host never answers: shutdown would wait for keepalives to
   * give up (and ssh2 ignores a `destroy()` after `end()`). sshd treats the reset as a dropped
   * connection. Commands still running fail with SSH_CONNECT (connection lost).
   */
  async close(): Promise<void> {
    this.closed = true;
    const conns = this.connections.splice(0);
    for (const wake of [...this.waiting.splice(0), ...this.dialQueue.splice(0)]) wake();
    await Promise.all(
      conns.map(async (conn) => {
        if (!conn.raw) return;
        conn.raw.destroy();
        await conn.closed;
      }),
    );
  }
}

/**
 * ssh2 writes every packet to the socket on its own (a channel open, its exec request, each data
 * chunk, EOF, close): one syscall each. Corking the socket at the first write of a tick and
 * uncorking it on the next tick sends what one tick wrote in one `writev`, for every job sharing
 * the connection. TCP_NODELAY stays on, so nothing waits longer than the tick.
 */
function coalesceWrites(sock: Socket): void {
  const write = sock.write.bind(sock) as (...args: unknown[]) => boolean;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    sock.uncork();
  };
  sock.write = ((...args: unknown[]) => {
    if (!corked) {
      corked = true;
      sock.cork();
      process.nextTick(uncork);
    }
    return write(...args);
  }) as Socket['write'];
}

/**
 * ssh2's `Channel.destroy()`, run when the channel's readable side ends, is `end()` then `close()`.
 * `end()` on a writable side that has already finished (the command's stdin was ended) only builds
 * an ERR_STREAM_ALREADY_FINISHED error, stack trace and all, that nobody sees: a measurable cost
 * per command in a burst. Then only `close()` runs, as it would have anyway.
 */
function skipEndAfterFinish(ch: ClientChannel): void {
  const destroy = ch.destroy.bind(ch);
  ch.destroy = (() => {
    if (!ch.writableFinished) return destroy();
    ch.close();
    return ch;
  }) as ClientChannel['destroy'];
}

/**
 * The channel's writable side as a stream of its own: ending it sends EOF, nothing else. A chunk's
 * packets (ssh2 cuts it at the peer's packet size, 32 KiB from OpenSSH, and writes each in four
 * pieces) leave in one writev, since they are written in one tick (`coalesceWrites`).
 */
function channelStdin(ch: ClientChannel): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (ch.write(chunk)) cb();
      else ch.once('drain', () => cb());
    },
    final(cb) {
      ch.end();
      cb();
    },
  });
}

/** One `SshConnector` per `host:port`, shared by every job on that instance. */
export class SshConnectorPool {
  private readonly connectors = new Map<string, SshConnector>();

  constructor(private readonly opts: SshConnectorOptions) {}

  /** The time the pool's connectors (and the local ones made beside them) run on. */
  get time(): Time {
    return this.opts.time ?? systemTime;
  }

  /** The instance's connector; the target's key is used when a (re)connection is needed. */
  get(target: SshTarget): SshConnector {
    const key = `${target.username}@${target.host}:${target.port}|${target.pinAs ?? ''}`;
    let c = this.connectors.get(key);
    if (!c) {
      c = new SshConnector(target, this.opts);
      this.connectors.set(key, c);
    } else if (target.maxSessions) {
      c.maxSessions = Math.max(1, target.maxSessions);
    }
    return c;
  }

  /**
   * An instance is gone: closes its connections and forgets the host keys pinned for it (targets
   * pinned `<id>@host:port`), so its address can serve a new instance.
   */
  async forgetInstance(id: string): Promise<void> {
    for (const [key, c] of [...this.connectors]) {
      const pin = key.slice(key.indexOf('|') + 1);
      if (!pin.startsWith(`${id}@`)) continue;
      this.connectors.delete(key);
      await c.close();
      await this.opts.knownHosts.forget(pin);
    }
  }

  async close(): Promise<void> {
    const all = [...this.connectors.values()];
    this.connectors.clear();
    await Promise.all(all.map((c) => c.close()));
  }
}
