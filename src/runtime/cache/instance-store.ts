/**
 * GitLab Runner's non-distributed cache: archives kept on the instance itself, at
 * `<cache dir>/<project path>/<key>/cache.zip` (the cache dir is the builds dir's sibling), used by
 * fleets without a cache block on instances that outlive a job. Bytes move over the job's
 * connector with backpressure (`cat` out, `cat >` in); the instance needs only sh, cat, mkdir, mv.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { posix } from 'node:path';
import type { Connector } from '../connectors/connector.js';
import { shellQuote } from '../script/shell-quote.js';
import type { CacheArchive, CacheStore } from './cache-store.js';

export class InstanceCacheStore implements CacheStore {
  readonly onInstance = true;

  /** `name(key)`: the archive's path below `root` (cache-key.ts `localCachePath`). */
  constructor(
    private readonly connector: Connector,
    private readonly root: string,
    private readonly name: (key: string) => string | undefined,
  ) {}

  where(key: string): string {
    const name = this.name(key);
    if (name === undefined) throw new Error(`cache key ${JSON.stringify(key)} leaves the cache directory`);
    return posix.join(this.root, name);
  }

  async get(key: string, signal: AbortSignal): Promise<CacheArchive | undefined> {
    const path = shellQuote(this.where(key));
    let size = '';
    const probe = await this.connector.exec(`test -f ${path} && wc -c < ${path}`, {
      onStdout: (c) => (size += c.toString()),
      signal,
    });
    if (probe.exitCode !== 0) return undefined;
    const body = new PassThrough();
    this.connector
      .exec(`exec cat ${path}`, { stdoutStream: body, signal })
      .then((r) => {
        if (r.exitCode === 0) body.end();
        else
          body.destroy(
            new Error(`reading the cache on the instance failed (exit ${r.exitCode ?? r.signal})`),
          );
      })
      .catch((e: unknown) => body.destroy(e as Error));
    const n = Number.parseInt(size.trim(), 10);
    return { body, ...(Number.isFinite(n) && { size: n }) };
  }

  async put(
    key: string,
    file: string,
    _size: number,
    _meta: Record<string, string>,
    signal: AbortSignal,
  ): Promise<void> {
    const path = this.where(key);
    // A reader (another job) never sees half an archive: written aside, renamed into place.
    const tmp = shellQuote(`${path}.${randomBytes(6).toString('hex')}.tmp`);
    const proc = await this.connector.spawn(
      `mkdir -p ${shellQuote(posix.dirname(path))} && cat > ${tmp} && exec mv -f ${tmp} ${shellQuote(path)}`,
      { signal },
    );
    try {
      await pipeline(createReadStream(file), proc.stdin);
    } catch (e) {
      proc.kill();
      await proc.done.catch(() => undefined);
      throw e;
    }
    const r = await proc.done;
    if (r.exitCode !== 0)
      throw new Error(`storing the cache on the instance failed (exit ${r.exitCode ?? r.signal})`);
  }
}
