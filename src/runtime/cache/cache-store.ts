/**
 * Where cache archives (GitLab Runner's `cache.zip`) are kept: a bucket (s3-store.ts), a directory
 * on the manager (the `local` cache type, and the local provider's shared cache), or the instance
 * itself (GitLab's non-distributed cache). A store moves whole archives as streams; it never reads
 * one into memory.
 */
import type { Readable } from 'node:stream';

export interface CacheArchive {
  body: Readable;
  /** Bytes, when the store knows. */
  size?: number;
}

export interface CacheStore {
  /** Where `key`'s archive is, for the job log: a URL without credentials or a path. */
  where(key: string): string;
  /** The archive of `key`, or undefined when there is none. Rejects on other failures. */
  get(key: string, signal: AbortSignal): Promise<CacheArchive | undefined>;
  /**
   * Stores the archive in `file` (a zip on the manager, `size` bytes) as `key`'s, replacing any.
   * `metadata.cachekey` is the human key, as GitLab Runner sends it (`x-amz-meta-cachekey`).
   */
  put(
    key: string,
    file: string,
    size: number,
    metadata: Record<string, string>,
    signal: AbortSignal,
  ): Promise<void>;
  /** True for a store on the instance (GitLab's non-distributed cache), for the log wording. */
  readonly onInstance?: boolean;
}
