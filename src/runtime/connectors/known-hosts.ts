/**
 * Trust on first use for instance host keys: the first key an `address:port` presents is pinned in
 * a JSON file under the state directory, and every later connection must present the same key.
 * Fingerprints are OpenSSH's `SHA256:<base64>`, so an operator can compare them with
 * `ssh-keygen -lf`.
 *
 * The check runs inside every SSH handshake, within its timeout, so it answers from memory once the
 * file was read: a key that matches its pin, and a first contact (pinned in memory at once, written
 * to the file in the background, several pins in one write). Only a key that differs from its pin
 * goes back to the file, so a pin an operator removed by hand (the SSH_HOSTKEY hint says to) is
 * seen. Before, every check read (and a first contact rewrote) the file one after the other; with
 * 20 instances contacted at once on a busy manager the queue outlasted the 10 s handshake timeout
 * and jobs failed (measured by bench/dispatch). Writes merge this process's changes into what is
 * on disk, so a hand edit of other entries is kept.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export type HostKeyVerdict = 'pinned' | 'trusted' | 'mismatch';

export interface PinnedHostKey {
  fingerprint: string;
  pinnedAt: string;
}

type Hosts = Record<string, PinnedHostKey>;

export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

export class KnownHostsFile {
  /** Serialises this process's reads and writes of the file. */
  private queue: Promise<unknown> = Promise.resolve();
  /** The file as last read, with this process's changes; undefined until first read. */
  private cache: Hosts | undefined;
  /** Changes not yet written: a pin, or `null` for a forgotten host. */
  private readonly pending = new Map<string, PinnedHostKey | null>();
  /** The write queued and not yet started, which later changes join. */
  private flush: Promise<void> | undefined;

  constructor(
    /** The JSON file, e.g. `<stateDir>/known_hosts.json`; created on the first pin. */
    readonly path: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * `pinned` when `hostPort` was unknown and `key` is now pinned, `trusted` when it matches the
   * pinned key, `mismatch` when it differs (nothing is written then). Rejects only when the file
   * cannot be read (the handshake is then refused).
   */
  check(hostPort: string, key: Buffer): Promise<HostKeyVerdict> {
    const fp = fingerprint(key);
    const known = this.cache?.[hostPort];
    if (this.cache && known?.fingerprint === fp) return Promise.resolve('trusted');
    if (this.cache && !known) return Promise.resolve(this.pin(hostPort, fp));
    // Not read yet, or a key that differs from its pin: the file decides.
    return this.locked(async () => {
      const hosts = await this.reload();
      const pinned = hosts[hostPort];
      if (!pinned) return this.pin(hostPort, fp);
      return pinned.fingerprint === fp ? 'trusted' : 'mismatch';
    });
  }

  /** The pinned fingerprint of `hostPort`, if any, as the file has it once queued writes are done. */
  async pinned(hostPort: string): Promise<string | undefined> {
    return this.locked(async () => (await this.reload())[hostPort]?.fingerprint);
  }

  /**
   * Forgets `hostPort`: call it when the instance behind an address is deleted, so a new instance
   * that reuses the address is pinned afresh instead of being refused. Resolves once written.
   */
  forget(hostPort: string): Promise<void> {
    if (this.cache) delete this.cache[hostPort];
    this.pending.set(hostPort, null);
    return this.persist();
  }

  private pin(hostPort: string, fp: string): 'pinned' {
    const entry = { fingerprint: fp, pinnedAt: this.now().toISOString() };
    this.cache![hostPort] = entry;
    this.pending.set(hostPort, entry);
    // A failed write keeps the pin pending for the next one; the pin holds in memory meanwhile.
    this.persist().catch(() => undefined);
    return 'pinned';
  }

  /** Queues one write for every change made until it starts. */
  private persist(): Promise<void> {
    this.flush ??= this.locked(async () => {
      this.flush = undefined;
      const changes = new Map(this.pending);
      this.pending.clear();
      try {
        const hosts = applyChanges(await this.readFile(), changes);
        await this.writeFile(hosts);
        this.cache = applyChanges({ ...hosts }, this.pending);
      } catch (e) {
        for (const [k, v] of changes) if (!this.pending.has(k)) this.pending.set(k, v);
        throw e;
      }
    });
    return this.flush;
  }

  /** Reads the file into the cache, with the changes not yet written on top. */
  private async reload(): Promise<Hosts> {
    this.cache = applyChanges(await this.readFile(), this.pending);
    return this.cache;
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async readFile(): Promise<Hosts> {
    try {
      return JSON.parse(await readFile(this.path, 'utf8')) as Hosts;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw e;
    }
  }

  private async writeFile(hosts: Hosts): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(hosts, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, this.path);
  }
}

function applyChanges(hosts: Hosts, changes: Map<string, PinnedHostKey | null>): Hosts {
  for (const [k, v] of changes) {
    if (v) hosts[k] = v;
    else delete hosts[k];
  }
  return hosts;
}
