/**
 * Reads `connector.key_path` for the providers that hand out a configured key (static hosts, AWS
 * with `use_static_credentials`). A job's connect used to read the file each time (an open, a
 * read, a close per job); now one read serves every job for `ttlMs`, so a rotated key is still
 * picked up within that time. A failed read is not kept: the next call tries again.
 */
import { readFile } from 'node:fs/promises';
import { systemTime, type Time } from '../util/time.js';

export type ReadKeyFile = (path: string) => Promise<string>;

/** How long a key read from disk is reused. */
export const KEY_FILE_TTL_MS = 10_000;

export function cachedKeyReader(
  read: ReadKeyFile = (path) => readFile(path, 'utf8'),
  time: Time = systemTime,
  ttlMs = KEY_FILE_TTL_MS,
): ReadKeyFile {
  const cache = new Map<string, { at: number; key: Promise<string> }>();
  return (path) => {
    const now = time.now().getTime();
    const hit = cache.get(path);
    if (hit && now - hit.at < ttlMs) return hit.key;
    const key = read(path);
    cache.set(path, { at: now, key });
    key.catch(() => {
      if (cache.get(path)?.key === key) cache.delete(path);
    });
    return key;
  };
}
