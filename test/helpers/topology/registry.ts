/**
 * A private registry for tests: Debian's `docker-registry` (the CNCF distribution server) on a
 * free 127.0.0.1 port with htpasswd auth, so an image pushed there can be pulled back only with
 * credentials (dockerd treats registries on 127.0.0.0/8 as plain HTTP by default).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { request } from 'node:http';
import { join } from 'node:path';
import { onProcessEnd, waitFor } from './processes.js';
import { findProgram } from './require-or-skip.js';
import type { Dockerd } from './dockerd.js';
import type { Teardownable } from './sshd.js';

export interface Registry {
  /** `127.0.0.1:PORT`: the image name prefix. */
  address: string;
  username: string;
  password: string;
  /** Tags `image` as `<address>/<name>`, pushes it with the credentials, removes both local tags. */
  push(d: Dockerd, image: string, name: string): string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function status(address: string, auth?: string): Promise<number> {
  return new Promise((resolve) => {
    const [host, port] = address.split(':');
    const req = request(
      { host, port: Number(port), path: '/v2/', timeout: 1000, ...(auth ? { auth } : {}) },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', () => resolve(0));
    req.on('timeout', () => {
      req.destroy();
      resolve(0);
    });
    req.end();
  });
}

export async function startRegistry(t: Teardownable, dir: string): Promise<Registry> {
  const registry = findProgram('docker-registry');
  const htpasswd = findProgram('htpasswd');
  const docker = findProgram('docker');
  if (!registry || !htpasswd || !docker) throw new Error('docker-registry, htpasswd and docker are needed');
  const root = mkdtempSync(join(dir, 'registry-'));
  const username = 'ci';
  const password = `s3cret-${process.pid}`;
  writeFileSync(join(root, 'htpasswd'), execFileSync(htpasswd, ['-Bbn', username, password]));
  const address = `127.0.0.1:${await freePort()}`;
  writeFileSync(
    join(root, 'config.yml'),
    [
      'version: 0.1',
      'log: { level: error }',
      `storage: { filesystem: { rootdirectory: ${join(root, 'data')} } }`,
      `http: { addr: "${address}" }`,
      `auth: { htpasswd: { realm: runfleet-test, path: ${join(root, 'htpasswd')} } }`,
    ].join('\n'),
  );
  const child = spawn(registry, ['serve', join(root, 'config.yml')], { stdio: 'ignore' });
  const unregister = onProcessEnd(() => void child.kill('SIGKILL'));
  child.once('exit', unregister);
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await waitFor(() => child.exitCode !== null || child.signalCode !== null, 5000, 50);
    }
    rmSync(root, { recursive: true, force: true });
  });
  const up = await waitFor(
    async () => child.exitCode !== null || (await status(address)) === 401,
    20_000,
    100,
  );
  if (!up || child.exitCode !== null)
    throw new Error(`docker-registry did not start (exit ${child.exitCode})`);
  const push = (d: Dockerd, image: string, name: string): string => {
    const target = `${address}/${name}`;
    // A docker CLI config of its own: the test's credentials never land in ~/.docker.
    const config = mkdtempSync(join(root, 'cli-'));
    const cli = (...args: string[]) =>
      execFileSync(docker, ['--config', config, '-H', `unix://${d.socketPath}`, ...args], {
        encoding: 'utf8',
        input: args[0] === 'login' ? password : undefined,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
    cli('login', address, '-u', username, '--password-stdin');
    cli('tag', image, target);
    cli('push', target);
    cli('rmi', target);
    rmSync(config, { recursive: true, force: true });
    return target;
  };
  return { address, username, password, push };
}
