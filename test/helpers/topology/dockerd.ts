/**
 * A real Docker engine for tests: vfs storage, no iptables, no default bridge (user-defined bridge
 * networks still work, as job networks need), its socket in a temp dir,
 * with the image `runfleet-test/busybox:1` imported from the static busybox (no registry is
 * reachable, so nothing can be pulled). Starting takes seconds: share one per test file.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { waitFor, onProcessEnd } from './processes.js';
import { findProgram } from './require-or-skip.js';
import type { Teardownable } from './sshd.js';

export const TEST_IMAGE = 'runfleet-test/busybox:1';

/** Applets linked into the test image: what a minimal job image offers. */
const APPLETS = [
  'sh',
  'echo',
  'ls',
  'cat',
  'sleep',
  'env',
  'true',
  'false',
  'mkdir',
  'rm',
  'printf',
  'hostname',
  'uname',
  'id',
  'kill',
  'ps',
  'pwd',
  'test',
  'grep',
  'httpd',
  'wget',
  'nc',
];

export interface Dockerd {
  socketPath: string;
  dir: string;
  /** Runs the docker CLI against this daemon; returns stdout. */
  cli(...args: string[]): string;
  stop(): Promise<void>;
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', timeout: 500 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

export async function startDockerd(t: Teardownable): Promise<Dockerd> {
  const dockerd = findProgram('dockerd');
  const docker = findProgram('docker');
  const busybox = findProgram('busybox');
  if (!dockerd || !docker || !busybox) throw new Error('dockerd, docker and busybox are needed');
  // Short path: Unix socket paths are limited to 108 bytes.
  const dir = mkdtempSync(join(tmpdir(), 'rf-dk-'));
  const socketPath = join(dir, 'docker.sock');
  const child: ChildProcess = spawn(
    dockerd,
    [
      '--storage-driver=vfs',
      '--iptables=false',
      '--ip6tables=false',
      '--bridge=none',
      '--data-root',
      join(dir, 'root'),
      '--exec-root',
      join(dir, 'exec'),
      '-H',
      `unix://${socketPath}`,
      '-p',
      join(dir, 'docker.pid'),
    ],
    { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, DOCKER_HOST: '' } },
  );
  // If the test process dies without its teardown (a tap timeout), do not leave dockerd behind.
  const reap = (): void => void child.kill('SIGKILL');
  const unregister = onProcessEnd(reap);
  child.once('exit', unregister);
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const done = await waitFor(() => child.exitCode !== null || child.signalCode !== null, 10_000, 50);
    if (!done) child.kill('SIGKILL');
  };
  t.teardown(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const up = await waitFor(async () => child.exitCode !== null || (await ping(socketPath)), 30_000, 100);
  if (!up || child.exitCode !== null) throw new Error(`dockerd did not start (exit ${child.exitCode})`);

  const cli = (...args: string[]): string =>
    execFileSync(docker, ['-H', `unix://${socketPath}`, ...args], { encoding: 'utf8' });
  const d = { socketPath, dir, cli, stop };
  importBusyboxImage(d, TEST_IMAGE);
  return d;
}

/**
 * Imports the static busybox as image `tag` on `d`, with Dockerfile-like `changes` besides
 * `ENV PATH=/bin` (e.g. `EXPOSE 80`), and `files` (path → content) in its root.
 */
export function importBusyboxImage(
  d: Pick<Dockerd, 'socketPath' | 'dir'>,
  tag: string,
  changes: string[] = [],
  files: Record<string, string> = {},
): void {
  const docker = findProgram('docker');
  const busybox = findProgram('busybox');
  if (!docker || !busybox) throw new Error('docker and busybox are needed');
  const rootfs = mkdtempSync(join(d.dir, 'image-root-'));
  chmodSync(rootfs, 0o755); // the image's / : a non-root user must reach /bin
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  mkdirSync(join(rootfs, 'tmp'));
  copyFileSync(busybox, join(rootfs, 'bin', 'busybox'));
  for (const applet of APPLETS) symlinkSync('busybox', join(rootfs, 'bin', applet));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(rootfs, path)), { recursive: true });
    writeFileSync(join(rootfs, path), content);
  }
  const args = ['ENV PATH=/bin', ...changes].flatMap((c) => ['-c', c]);
  execFileSync('sh', [
    '-c',
    `root=$1 docker=$2 sock=$3 tag=$4; shift 4; tar -C "$root" -c . | "$docker" -H "unix://$sock" import "$@" - "$tag" >/dev/null`,
    'sh',
    rootfs,
    docker,
    d.socketPath,
    tag,
    ...args,
  ]);
  rmSync(rootfs, { recursive: true, force: true });
}
