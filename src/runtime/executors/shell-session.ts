/**
 * One shell per job on an instance: every stage script of the job runs in the same session, one
 * after the other, instead of a session (and a login shell, `sh -c` and `bash -s`) per stage.
 *
 * Where the connector's own shell (sshd's login shell) is bash 4 or later, that shell runs the
 * session itself: a loop of `read` and `eval` in its `-c` command, each stage framed by its byte
 * length, so no second shell is exec'd and a stage is read in a few large reads instead of the one
 * read per byte a shell parsing a pipe (`bash -s`) must make. Elsewhere the session is `bash -s`,
 * or `sh -s` where the instance has no bash (probed once per connector), reading the stages as
 * they come. Each stage runs in a subshell with stdin from /dev/null, so its `exit`, `cd`, exports
 * and options stay its own and it cannot read the next stage; after it the shell prints an exit
 * marker (a random nonce, never part of the log) on stdout with the exit code and on stderr, and a
 * stage ends when both have arrived, so its output of both streams precedes the next stage's. A
 * stage that is aborted (cancel, timeout) kills the session's whole process group through the
 * connector, as before; the next stage (after_script) gets a fresh session. At the end the shell
 * kills whatever the job left running in its process group.
 */
import { randomUUID } from 'node:crypto';
import type { Connector, ExecResult, SpawnedCommand } from '../connectors/connector.js';
import { FleetError } from '../../errors.js';
import { systemTime, type Time } from '../../util/time.js';
import type { StageResult } from './executor.js';

export interface ShellProbe {
  shell: 'bash' | 'sh';
  /** The connector's own shell is bash 4 or later (`read -N`): it runs the session loop itself. */
  loginBash: boolean;
  /** The instance's host name, for prepare_script's "Running on …" line. */
  hostname: string;
}

const PROBE_COMMAND =
  'case "${BASH_VERSION-}" in [4-9]*|[1-9][0-9]*) echo login-bash;; *) echo;; esac; ' +
  'if command -v bash >/dev/null 2>&1; then echo bash; else echo sh; fi; ' +
  'hostname 2>/dev/null || uname -n 2>/dev/null || echo unknown';

const probes = new WeakMap<Connector, Promise<ShellProbe>>();

/** Which shell the instance has and its host name: asked once per connector (instance). */
export function probeShell(connector: Connector): Promise<ShellProbe> {
  let p = probes.get(connector);
  if (!p) {
    p = (async () => {
      let out = '';
      const r = await connector.exec(PROBE_COMMAND, { onStdout: (c) => (out += c.toString()) });
      const [login, shell, hostname] = out.split('\n').map((l) => l.trim());
      if (r.exitCode !== 0 || (shell !== 'bash' && shell !== 'sh')) {
        throw new FleetError('SSH_CONNECT', `${connector.description}: cannot start a shell`, {
          retryable: true,
          hint: 'the instance needs a POSIX sh',
        });
      }
      return { shell, loginBash: login === 'login-bash', hostname: hostname || 'unknown' };
    })();
    probes.set(connector, p);
    p.catch(() => probes.delete(connector));
  }
  return p;
}

export interface StageSink {
  stdout(chunk: Buffer): void;
  stderr(chunk: Buffer): void;
}

/** Splits one output stream at the session's exit markers; holds back a marker's possible start. */
class MarkerScanner {
  private held: Buffer = Buffer.alloc(0);

  constructor(
    private readonly marker: Buffer,
    private readonly withCode: boolean,
    private readonly emit: (chunk: Buffer) => void,
    private readonly onMarker: (code: number) => void,
  ) {}

  push(chunk: Buffer): void {
    let buf = this.held.length > 0 ? Buffer.concat([this.held, chunk]) : chunk;
    this.held = Buffer.alloc(0);
    for (let i = buf.indexOf(this.marker); i >= 0; i = buf.indexOf(this.marker)) {
      const nl = buf.indexOf(0x0a, i + this.marker.length);
      if (nl < 0) break;
      if (i > 0) this.emit(buf.subarray(0, i));
      const code = this.withCode ? Number(buf.subarray(i + this.marker.length + 1, nl).toString()) : 0;
      buf = buf.subarray(nl + 1);
      this.onMarker(Number.isFinite(code) ? code : 1);
    }
    const from = buf.indexOf(this.marker[0]!, Math.max(0, buf.length - this.marker.length - 12));
    if (from >= 0 && this.couldBeMarker(buf.subarray(from))) {
      if (from > 0) this.emit(buf.subarray(0, from));
      this.held = Buffer.from(buf.subarray(from));
      return;
    }
    if (buf.length > 0) this.emit(buf);
  }

  /** `tail` is a marker's beginning, or a whole marker still waiting for its newline. */
  private couldBeMarker(tail: Buffer): boolean {
    const n = Math.min(tail.length, this.marker.length);
    return tail.subarray(0, n).equals(this.marker.subarray(0, n));
  }

  /** Whatever is held (the shell ended): it was output after all. */
  flush(): void {
    if (this.held.length > 0) this.emit(this.held);
    this.held = Buffer.alloc(0);
  }
}

interface RunningStage {
  sink: StageSink;
  code?: number;
  stderrDone: boolean;
  resolve(r: StageResult): void;
  reject(e: unknown): void;
}

/**
 * The session loop bash runs in its `-c` command: a header line, then the stage text. `n<len>`
 * frames an ASCII text by its length, read with `read -N` (large reads; for ASCII, characters are
 * bytes in every locale); `z` a text that ends in a NUL byte, read a byte at a time. The loop's
 * own variables are unset in each stage's subshell (see `run`).
 */
const SESSION_LOOP =
  // The login shell may have read a ~/.bashrc: options, aliases and IFS as a fresh bash has them
  // (errexit there would end the session at a stage's failure, before its marker).
  "set +eux +o pipefail +o noclobber; shopt -u expand_aliases nullglob failglob; unalias -a; IFS=$' \\t\\n'; " +
  'while IFS= read -r _rf_h; do case $_rf_h in ' +
  'n*) IFS= read -r -N "${_rf_h#n}" _rf_s ;; *) IFS= read -r -d \'\' _rf_s ;; esac || break; ' +
  'eval "$_rf_s"; done';

/** `text` framed for SESSION_LOOP. */
function framed(text: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x01-\x7f]*$/.test(text) ? `n${text.length}\n${text}` : `z\n${text}\0`;
}

export interface ShellSessionOptions {
  connector: Connector;
  /** How long `close()` waits for the shell to end. @default 5000 */
  closeTimeoutMs?: number;
  time?: Time;
}

export class ShellSession {
  private proc: SpawnedCommand | undefined;
  private running: RunningStage | undefined;
  /** Where output goes between stages (a background process of an earlier stage). */
  private last: StageSink | undefined;
  // 122 random bits; randomUUID draws from a buffered pool, where randomBytes is a call into the
  // system's random source per session (a measurable share of a 1,000-job burst).
  private readonly nonce = `rf${randomUUID().replaceAll('-', '')}`;
  private readonly marker = Buffer.from(`\x01${this.nonce}`);
  private stdout: MarkerScanner | undefined;
  private stderr: MarkerScanner | undefined;
  /** The session is SESSION_LOOP: what it is sent must be framed. */
  private loop = false;
  /** Sessions started (the first, and one after each aborted stage). */
  started = 0;

  constructor(private readonly opts: ShellSessionOptions) {}

  private async start(): Promise<SpawnedCommand> {
    const { shell, loginBash } = await probeShell(this.opts.connector);
    const sinkOf = () => this.running?.sink ?? this.last;
    this.stdout = new MarkerScanner(
      this.marker,
      true,
      (c) => sinkOf()?.stdout(c),
      (code) => this.markerSeen('stdout', code),
    );
    this.stderr = new MarkerScanner(
      this.marker,
      false,
      (c) => sinkOf()?.stderr(c),
      () => this.markerSeen('stderr', 0),
    );
    const scanners = { out: this.stdout, err: this.stderr };
    this.loop = loginBash;
    const proc = await this.opts.connector.spawn(loginBash ? SESSION_LOOP : `exec ${shell} -s`, {
      onStdout: (c) => scanners.out.push(c),
      onStderr: (c) => scanners.err.push(c),
    });
    this.started++;
    proc.done.then(
      (r) => this.ended(proc, r, undefined),
      (e: unknown) => this.ended(proc, undefined, e),
    );
    return proc;
  }

  private markerSeen(stream: 'stdout' | 'stderr', code: number): void {
    const stage = this.running;
    if (!stage) return;
    if (stream === 'stdout') stage.code = code;
    else stage.stderrDone = true;
    if (stage.code === undefined || !stage.stderrDone) return;
    this.running = undefined;
    this.last = stage.sink;
    stage.resolve({ exitCode: stage.code });
  }

  /** The shell ended: a stage still running ends with it (killed, or the instance failed). */
  private ended(proc: SpawnedCommand, r: ExecResult | undefined, e: unknown): void {
    if (this.proc !== proc) return;
    this.proc = undefined;
    this.stdout?.flush();
    this.stderr?.flush();
    const stage = this.running;
    this.running = undefined;
    if (!stage) return;
    if (e !== undefined) return stage.reject(e);
    stage.resolve({
      exitCode: r?.exitCode ?? null,
      ...(r?.signal ? { signal: r.signal } : {}),
      ...(r?.aborted ? { aborted: true } : {}),
    });
  }

  /**
   * Runs one stage script (a whole POSIX sh script ending in `exit`) in the session and resolves
   * with its exit code. When `signal` aborts, the session's process group is killed and the stage
   * resolves `aborted`. Rejects when the instance fails. `inline` runs it in the session's shell
   * itself, without a subshell: only for a script that never exits and changes nothing later
   * stages see (`runsInSessionShell`).
   */
  async run(
    script: string,
    sink: StageSink,
    signal: AbortSignal,
    opts: { inline?: boolean } = {},
  ): Promise<StageResult> {
    if (signal.aborted) return { exitCode: null, aborted: true };
    if (this.running) throw new Error('ShellSession.run: a stage is already running');
    this.proc ??= await this.start();
    const proc = this.proc;
    const m = `\\001${this.nonce}`;
    const result = new Promise<StageResult>((resolve, reject) => {
      this.running = { sink, stderrDone: false, resolve, reject };
    });
    const onAbort = (): void => proc.kill();
    signal.addEventListener('abort', onAbort, { once: true });
    proc.write(
      this.send(
        `${opts.inline ? `{\n${script}\n}` : `(\nunset _rf_h _rf_s\n${script}\n)`} </dev/null\n` +
          `printf '${m}:%d\\n' "$?"; printf '${m}\\n' >&2\n`,
      ),
    );
    try {
      const r = await result;
      if (!signal.aborted) return r;
      // Killed: the shell is gone with the stage; whatever runs next gets a new session.
      await proc.done.catch(() => undefined);
      return { exitCode: null, aborted: true };
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private send(text: string): string {
    return this.loop ? framed(text) : text;
  }

  /** Ends the shell and everything the job left in its process group. Never throws. */
  async close(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.proc = undefined;
    proc.end(this.send('kill -KILL 0 2>/dev/null\nexit 0\n'));
    const time = this.opts.time ?? systemTime;
    const timer = time.after(this.opts.closeTimeoutMs ?? 5000, () => proc.kill());
    await proc.done.catch(() => undefined);
    timer.cancel();
  }
}
