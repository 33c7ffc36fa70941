/**
 * A real OpenSSH server as an "instance": its own loopback address (127.x.y.z), port 2222,
 * generated host and user keys, root login, stream-local forwarding for Docker sockets. Runs with
 * `-D` so the test owns the process; stopped on teardown.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { descendants, waitFor, onProcessEnd } from './processes.js';
import { findProgram } from './require-or-skip.js';

export interface Teardownable {
  teardown(fn: () => unknown): void;
}

export interface SshdInstance {
  host: string;
  port: number;
  username: string;
  /** OpenSSH-format private key authorized for root. */
  privateKey: string;
  dir: string;
  /** The sshd listener's pid (its CPU, with that of finished sessions, is in /proc/<pid>/stat). */
  readonly pid: number | undefined;
  /** Stops sshd and every session it serves (graceful). */
  stop(): Promise<void>;
  /** The instance dies: SIGKILL to sshd and every session process, at once. */
  crash(): void;
  /** Restarts sshd with a freshly generated host key (a different machine at the same address). */
  restartWithNewHostKey(): Promise<void>;
  /**
   * sshd dies but what it ran lives on: SIGKILL to the listener and the per-connection sshd
   * processes only, so the commands of its sessions keep running, orphaned (as after an OOM kill).
   */
  killSshdOnly(): void;
  /** Starts sshd again with the same host key (the same machine, its sshd back). */
  restart(): Promise<void>;
  /** The host freezes: SIGSTOP to sshd and everything it runs; TCP stays open, nothing answers. */
  freeze(): void;
  /** Undoes `freeze`. */
  thaw(): void;
}

function keygen(path: string): void {
  rmSync(path, { force: true });
  rmSync(`${path}.pub`, { force: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path]);
}

function randomLoopback(): string {
  const b = () => 1 + Math.floor(Math.random() * 253);
  return `127.${b()}.${b()}.${b()}`;
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface SshdOptions {
  host?: string;
  /** sshd's `MaxSessions` (sessions per connection). @default 64; OpenSSH's own default is 10 */
  maxSessions?: number;
  /**
   * sshd's `MaxStartups` (unauthenticated connections at once beyond which it drops new ones).
   * @default '64'; OpenSSH's own default is '10:30:100'
   */
  maxStartups?: string;
  /** sshd's `LogLevel`; VERBOSE logs each session it starts (see `sessionsStarted`). @default INFO */
  logLevel?: 'INFO' | 'VERBOSE';
  /**
   * Directories this sshd's sessions see as their own, empty at start (a bind mount from the
   * instance's dir, in a mount namespace of its own): several sshds on one machine then model
   * machines that do not share, say, `/tmp/runfleet-builds`. Needs root (unshare).
   */
  privateDirs?: string[];
}

/** Sessions sshd started so far (needs `logLevel: 'VERBOSE'`): one per exec channel. */
export function sessionsStarted(sshd: SshdInstance): number {
  try {
    return readFileSync(join(sshd.dir, 'sshd.log'), 'utf8').split('Starting session:').length - 1;
  } catch {
    return 0;
  }
}

export async function startSshd(t: Teardownable, opts: SshdOptions = {}): Promise<SshdInstance> {
  const sshd = findProgram('sshd');
  if (!sshd) throw new Error('sshd is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'rf-sshd-'));
  const host = opts.host ?? randomLoopback();
  const port = 2222;
  keygen(join(dir, 'hostkey'));
  keygen(join(dir, 'userkey'));
  copyFileSync(join(dir, 'userkey.pub'), join(dir, 'authorized_keys'));
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      `ListenAddress ${host}`,
      `HostKey ${dir}/hostkey`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin yes',
      'StrictModes no',
      'UsePAM no',
      `PidFile ${dir}/sshd.pid`,
      'AllowStreamLocalForwarding yes',
      `MaxSessions ${opts.maxSessions ?? 64}`,
      `LogLevel ${opts.logLevel ?? 'INFO'}`,
      `MaxStartups ${opts.maxStartups ?? '64'}`,
      // bash sources ~/.bashrc for commands run by sshd unless SHLVL says it is nested; the
      // developer's root .bashrc (pyenv init, rehash locks) must not leak into test instances.
      'SetEnv SHLVL=1',
      '',
    ].join('\n'),
  );
  mkdirSync('/run/sshd', { recursive: true });

  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const args = ['-D', '-f', join(dir, 'sshd_config'), '-E', join(dir, 'sshd.log')];
    const privateDirs = opts.privateDirs ?? [];
    // `unshare` (no --fork) and `sh` exec into sshd: the pid stays the listener's.
    const mounts = privateDirs
      .map((d, i) => {
        const own = join(dir, `private-${i}`);
        mkdirSync(own, { recursive: true });
        return `mkdir -p '${d}' && mount --bind '${own}' '${d}' && `;
      })
      .join('');
    const proc =
      privateDirs.length === 0
        ? spawn(sshd, args, { stdio: 'ignore' })
        : spawn(
            'unshare',
            [
              '--mount',
              '--propagation',
              'private',
              '--',
              'sh',
              '-c',
              `${mounts}exec "$@"`,
              'sh',
              sshd,
              ...args,
            ],
            { stdio: 'ignore' },
          );
    child = proc;
    // If the test process dies without its teardown (a tap timeout), do not leave sshd behind.
    const reap = (): void => void proc.kill('SIGKILL');
    const unregister = onProcessEnd(reap);
    proc.once('exit', unregister);
    const up = await waitFor(async () => proc.exitCode !== null || (await canConnect(host, port)), 5000, 25);
    if (!up || proc.exitCode !== null) {
      let log = '';
      try {
        log = readFileSync(join(dir, 'sshd.log'), 'utf8');
      } catch {
        // no log
      }
      throw new Error(`sshd on ${host}:${port} did not start: ${log}`);
    }
  };
  const signalEach = (pids: number[], signal: NodeJS.Signals): void => {
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  };
  const tree = (): number[] => (child?.pid ? [...descendants(child.pid), child.pid] : []);
  const killAll = (signal: NodeJS.Signals): void => signalEach(tree(), signal);
  // The listener (`/usr/sbin/sshd -D ...`) and per-connection ones (`sshd: root@notty`, `sshd-session`).
  const sshdPids = (): number[] =>
    tree().filter((pid) => {
      try {
        return /^(\S*\/)?sshd\b/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
      } catch {
        return false;
      }
    });
  const stop = async (): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    killAll('SIGTERM');
    killAll('SIGCONT'); // a frozen host must still stop
    await waitFor(() => proc.exitCode !== null || proc.signalCode !== null, 3000, 20);
  };

  await start();
  t.teardown(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    host,
    port,
    username: 'root',
    privateKey: readFileSync(join(dir, 'userkey'), 'utf8'),
    dir,
    get pid() {
      return child?.pid;
    },
    stop,
    crash: () => killAll('SIGKILL'),
    killSshdOnly: () => signalEach(sshdPids(), 'SIGKILL'),
    restart: async () => {
      await stop();
      await start();
    },
    freeze: () => killAll('SIGSTOP'),
    thaw: () => killAll('SIGCONT'),
    restartWithNewHostKey: async () => {
      await stop();
      keygen(join(dir, 'hostkey'));
      await start();
    },
  };
}
