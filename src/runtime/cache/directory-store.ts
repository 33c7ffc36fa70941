/**
 * A cache store in a directory on the manager: the `local` cache type (`<state dir>/cache`, object
 * names as in a bucket) and, without a cache block, the local provider's cache that every sandbox
 * shares (`<state dir>/cache/<project path>/<key>/cache.zip`, GitLab's non-distributed layout).
 * Writes go to a temporary file renamed into place, so a reader never sees half an archive.
 */
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { CacheArchive, CacheStore } from './cache-store.js';

export class DirectoryCacheStore implements CacheStore {
  /**
   * `name(key)` is the archive's path under `root` (POSIX, relative), or undefined for a key that
   * would leave it.
   */
  constructor(
    private readonly root: string,
    private readonly name: (key: string) => string | undefined,
  ) {}

  private path(key: string): string {
    const name = this.name(key);
    if (name === undefined) throw new Error(`cache key ${JSON.stringify(key)} leaves the cache directory`);
    return join(this.root, ...name.split('/'));
  }

  where(key: string): string {
    return this.path(key);
  }

  async get(key: string): Promise<CacheArchive | undefined> {
    const path = this.path(key);
    try {
      const s = await stat(path);
      if (!s.isFile()) return undefined;
      return { body: createReadStream(path), size: s.size };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async put(key: string, file: string): Promise<void> {
    const path = this.path(key);
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await copyFile(file, tmp);
      await rename(tmp, path);
    } finally {
      await rm(tmp, { force: true });
    }
  }
}
