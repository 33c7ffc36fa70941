/**
 * Trust on first use for instance host keys: the first key an `address:port` presents is pinned in
 * a JSON file under the state directory, and every later connection must present the same key.
 * Fingerprints are OpenSSH's `SHA256:<base64>`, so an operator can compare them with
 * `ssh-keygen -lf`.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export type HostKeyVerdict = 'pinned' | 'trusted' | 'mismatch';

export interface PinnedHostKey {
  fingerprint: string;
  pinnedAt: string;
}

export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

export class KnownHostsFile {
  /** Serialises read-modify-write cycles of this process. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    /** The JSON file, e.g. `<stateDir>/known_hosts.json`; created on the first pin. */
    readonly path: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * `pinned` when `hostPort` was unknown and `key` is now pinned, `trusted` when it matches the
   * pinned key, `mismatch` when it differs (nothing is written then).
   */
  check(hostPort: string, key: Buffer): Promise<HostKeyVerdict> {
    return this.locked(async () => {
      const hosts = await this.read();
      const fp = fingerprint(key);
      const pinned = hosts[hostPort];
      if (pinned) return pinned.fingerprint === fp ? 'trusted' : 'mismatch';
      hosts[hostPort] = { fingerprint: fp, pinnedAt: this.now().toISOString() };
      await this.write(hosts);
      return 'pinned';
    });
  }

  /** The pinned fingerprint of `hostPort`, if any. */
  async pinned(hostPort: string): Promise<string | undefined> {
    return (await this.read())[hostPort]?.fingerprint;
  }

  /**
   * Forgets `hostPort`: call it when the instance behind an address is deleted, so a new instance
   * that reuses the address is pinned afresh instead of being refused.
   */
  forget(hostPort: string): Promise<void> {
    return this.locked(async () => {
      const hosts = await this.read();
      if (!(hostPort in hosts)) return;
      delete hosts[hostPort];
      await this.write(hosts);
    });
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async read(): Promise<Record<string, PinnedHostKey>> {
    try {
      return JSON.parse(await readFile(this.path, 'utf8')) as Record<string, PinnedHostKey>;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw e;
    }
  }

  private async write(hosts: Record<string, PinnedHostKey>): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(hosts, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, this.path);
  }
}
