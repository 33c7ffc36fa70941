/**
 * The cache stages of one job, GitLab Runner's `restore_cache` and `archive_cache` /
 * `archive_cache_on_failure` (docs/caches.md), run by the manager around the job's steps:
 *
 * - restore: per `cache[]` entry whose policy pulls, the key, then each fallback key, until one has
 *   an archive; the zip is spooled on the manager's disk and unpacked into the project directory
 *   on the instance (runtime/transfer). A miss or a failure is a warning: the job goes on.
 * - archive: per entry whose `when` matches how the job ended and whose policy pushes, the paths
 *   (and untracked files) are selected on the instance and streamed off as a zip (runtime/transfer)
 *   into a temporary file, which goes to the store, unless it holds exactly what the job restored
 *   under the same key ("Archive is up to date!"): then nothing is uploaded.
 *
 * The log lines are gitlab-runner's. Archives pass through the manager's disk, never its memory.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import type { Connector } from '../connectors/connector.js';
import type { JobOutput } from '../executors/executor.js';
import type { JobPayload } from '../gitlab/job.js';
import {
  archiveStream,
  compressionLevel,
  extractZip,
  selectFiles,
  selectionLog,
  spoolToFile,
} from '../transfer/index.js';
import type { CacheStore } from './cache-store.js';
import {
  cacheRequestTimeoutMs,
  cacheWhen,
  cachesSomething,
  isSkipped,
  resolveCache,
  restoreAttempts,
  shouldArchive,
  type ResolvedCache,
} from './cache-key.js';

const GREEN = '\x1b[32;1m';
const YELLOW = '\x1b[0;33m';
const CYAN = '\x1b[36;1m';
const RESET = '\x1b[0;m';

/** What the stage runner needs of a job's caches (executors/stage-runner.ts). */
export interface CacheStages {
  readonly hasCaches: boolean;
  /** restore_cache; resolves with a message when the job must fail. */
  restore(output: JobOutput, signal: AbortSignal): Promise<string | undefined>;
  /** Whether the archive stage for how the job ended has an entry (else it is skipped, as GitLab does). */
  archives(success: boolean): boolean;
  /** archive_cache (`success`) or archive_cache_on_failure; a message when the job must fail. */
  archive(success: boolean, output: JobOutput, signal: AbortSignal): Promise<string | undefined>;
}

/** Where the job's files are, known once the executor is prepared. */
export interface CacheSite {
  /** Absolute project directory on the host the connector reaches (not a container's path). */
  projectDir: string;
  /** The job's variables, expanded (keys, policies, paths, RESTORE_CACHE_ATTEMPTS, ...). */
  variables: ReadonlyMap<string, string>;
}

export interface JobCachesOptions {
  store: CacheStore;
  /** Reaches the host whose disk holds the project directory (the instance, not a container). */
  connector: Connector;
  /** Called after the executor is prepared, once. */
  site: () => CacheSite;
  /** `max_uploaded_archive_size`: bytes, 0 for no limit. */
  maxUploadedArchiveSize?: number;
  /** Where archives are spooled on the manager. @default os.tmpdir() */
  spoolDir?: string;
}

/** What a restore brought, per key: the archive's entries, to tell an unchanged cache. */
type Manifest = string;

export class JobCaches implements CacheStages {
  private readonly restored = new Map<string, Manifest>();
  private resolved: { site: CacheSite; entries: ReturnType<typeof resolveCache>[] } | undefined;

  constructor(
    private readonly job: JobPayload,
    private readonly opts: JobCachesOptions,
  ) {}

  /** Whether the job has a cache entry at all (else both stages are skipped, as GitLab does). */
  get hasCaches(): boolean {
    return (this.job.cache ?? []).some(cachesSomething);
  }

  archives(success: boolean): boolean {
    return (this.job.cache ?? []).some(
      (c) => cachesSomething(c) && shouldArchive(cacheWhen(c.when), success),
    );
  }

  private get site(): CacheSite {
    return this.resolve().site;
  }

  private get entries(): ReturnType<typeof resolveCache>[] {
    return this.resolve().entries;
  }

  private resolve(): { site: CacheSite; entries: ReturnType<typeof resolveCache>[] } {
    if (!this.resolved) {
      const site = this.opts.site();
      const entries = (this.job.cache ?? [])
        .filter(cachesSomething)
        .map((c) => resolveCache(this.job, c, site.variables));
      this.resolved = { site, entries };
    }
    return this.resolved;
  }

  /**
   * restore_cache. Resolves with an error message when the job must fail (an unknown policy, as
   * GitLab Runner fails it); a missing or broken cache is only a warning.
   */
  async restore(output: JobOutput, signal: AbortSignal): Promise<string | undefined> {
    const say = (text: string, color = '') =>
      output.write(`${color}${text}${color ? RESET : ''}\n`, 'stdout');
    say('Restoring cache', CYAN);
    for (const entry of this.entries) {
      for (const w of entry.warnings) say(`WARNING: ${w}`, YELLOW);
      if (isSkipped(entry)) {
        if (entry.fatal) return entry.skipped;
        say(entry.skipped, GREEN);
        continue;
      }
      if (entry.policy === 'push') {
        say(`Not downloading cache ${entry.key} due to policy`, GREEN);
        continue;
      }
      for (const key of [entry.key, ...entry.fallbackKeys]) {
        if (signal.aborted) return undefined;
        say(`Checking cache for ${key}...`, GREEN);
        const outcome = await this.restoreKey(key, output, signal);
        if (outcome === 'restored') {
          say('Successfully extracted cache', GREEN);
          break;
        }
        say('Failed to extract cache', YELLOW);
      }
    }
    return undefined;
  }

  /** One key: attempts (RESTORE_CACHE_ATTEMPTS) on errors, none on a miss. */
  private async restoreKey(
    key: string,
    output: JobOutput,
    signal: AbortSignal,
  ): Promise<'restored' | 'missed'> {
    const attempts = restoreAttempts(this.site.variables);
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1)
        output.write(`Retrying cache restore (attempt ${attempt} of ${attempts})...\n`, 'stdout');
      const timeout = AbortSignal.timeout(cacheRequestTimeoutMs(this.site.variables));
      const sig = AbortSignal.any([signal, timeout]);
      try {
        const archive = await this.opts.store.get(key, sig);
        if (!archive) {
          output.write(
            `${YELLOW}WARNING: ${this.opts.store.onInstance ? 'Cache file does not exist' : 'file does not exist'}${RESET}\n`,
            'stdout',
          );
          return 'missed';
        }
        output.write(
          this.opts.store.onInstance
            ? 'No URL provided, cache will not be downloaded from shared cache server. Instead a local version of cache will be extracted.\n'
            : `Downloading cache.zip from ${this.opts.store.where(key)}\n`,
          'stdout',
        );
        const spooled = await spoolToFile(archive.body, {
          signal: sig,
          name: 'cache.zip',
          ...this.spoolDir(),
        });
        try {
          const manifest = await zipManifest(spooled.path);
          const summary = await extractZip(this.opts.connector, {
            root: this.site.projectDir,
            zipFile: spooled.path,
            signal: sig,
          });
          for (const s of summary.skipped) output.write(`${YELLOW}WARNING: ${s}${RESET}\n`, 'stdout');
          this.restored.set(key, manifest);
          return 'restored';
        } finally {
          await spooled.remove();
        }
      } catch (e) {
        if (signal.aborted) return 'missed';
        const why = timeout.aborted
          ? 'the cache request timed out (CACHE_REQUEST_TIMEOUT)'
          : (e as Error).message;
        output.write(`${YELLOW}WARNING: ${why}${RESET}\n`, 'stdout');
      }
    }
    return 'missed';
  }

  /** archive_cache (`success`) or archive_cache_on_failure. Never fails the job but for a bad policy. */
  async archive(success: boolean, output: JobOutput, signal: AbortSignal): Promise<string | undefined> {
    const say = (text: string, color = '') =>
      output.write(`${color}${text}${color ? RESET : ''}\n`, 'stdout');
    const wanted = this.entries.filter((e) => isSkipped(e) || shouldArchive(e.when, success));
    if (wanted.length === 0) return undefined;
    say(success ? 'Saving cache for successful job' : 'Saving cache for failed job', CYAN);
    for (const entry of wanted) {
      if (signal.aborted) return undefined;
      if (isSkipped(entry)) {
        if (entry.fatal) return entry.skipped;
        say(entry.skipped.replace('extraction', 'archiving'), GREEN);
        continue;
      }
      if (entry.policy === 'pull') {
        say(`Not uploading cache ${entry.key} due to policy`, GREEN);
        continue;
      }
      say(`Creating cache ${entry.key}...`, GREEN);
      try {
        await this.archiveEntry(entry, output, signal);
        say('Created cache', GREEN);
      } catch (e) {
        if (signal.aborted) return undefined;
        say(`WARNING: ${(e as Error).message}`, YELLOW);
        say('Failed to create cache', YELLOW);
      }
    }
    return undefined;
  }

  private async archiveEntry(entry: ResolvedCache, output: JobOutput, signal: AbortSignal): Promise<void> {
    const { connector, store } = this.opts;
    const { projectDir } = this.site;
    const selection = await selectFiles(connector, {
      root: projectDir,
      paths: entry.paths,
      untracked: entry.untracked,
      signal,
    });
    for (const line of selectionLog(selection)) {
      output.write(
        line.level === 'warning' ? `${YELLOW}WARNING: ${line.text}${RESET}\n` : `${line.text}\n`,
        'stdout',
      );
    }
    if (selection.paths.length === 0) {
      output.write(`${YELLOW}WARNING: No files to cache.${RESET}\n`, 'stdout');
      return;
    }
    const dir = await mkdtemp(join(this.opts.spoolDir ?? tmpdir(), 'runfleet-cache-'));
    try {
      const file = join(dir, 'cache.zip');
      const archive = archiveStream(connector, {
        root: projectDir,
        paths: selection.paths,
        format: 'zip',
        // GitLab Runner's CACHE_COMPRESSION_LEVEL names (fastest … slowest).
        level: compressionLevel(this.site.variables.get('CACHE_COMPRESSION_LEVEL')),
        signal,
      });
      await Promise.all([pipeline(archive.stream, createWriteStream(file, { mode: 0o600 })), archive.done]);
      const manifest = await zipManifest(file);
      if (this.restored.get(entry.key) === manifest) {
        output.write('Archive is up to date!\n', 'stdout');
        return;
      }
      const { size } = await stat(file);
      const limit = this.opts.maxUploadedArchiveSize ?? 0;
      if (limit > 0 && size > limit) {
        output.write(
          `Cache archive size (${size}) is too big (Limit is set to ${limit}). Cache will not be uploaded.\n`,
          'stdout',
        );
        return;
      }
      output.write(
        store.onInstance
          ? `No URL provided, cache will not be uploaded to shared cache server. Cache will be stored only locally: ${store.where(entry.key)}\n`
          : `Uploading cache.zip to ${store.where(entry.key)}\n`,
        'stdout',
      );
      const timeout = AbortSignal.timeout(cacheRequestTimeoutMs(this.site.variables));
      try {
        await store.put(entry.key, file, size, { cachekey: entry.key }, AbortSignal.any([signal, timeout]));
      } catch (e) {
        if (timeout.aborted)
          throw new Error('the cache upload timed out (CACHE_REQUEST_TIMEOUT)', { cause: e });
        throw e;
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private spoolDir(): { dir?: string } {
    return this.opts.spoolDir ? { dir: this.opts.spoolDir } : {};
  }
}

/**
 * What a zip holds, as one comparable string: every entry's name, kind, permissions, size and CRC-32
 * (its content), sorted. Two archives with the same manifest restore the same files; times do
 * not count (a restore sets them from the archive, and zips keep them at 2 s precision).
 */
export function zipManifest(file: string): Promise<Manifest> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: true }, (err, zip) => {
      if (err || !zip) return reject(err ?? new Error('cannot open the archive'));
      const lines: string[] = [];
      zip.on('entry', (e: yauzl.Entry) => {
        const mode = (e.externalFileAttributes >>> 16) & 0o177777;
        const name = e.fileName.replace(/\/+$/, '');
        const kind =
          e.fileName.endsWith('/') || (mode & 0o170000) === 0o040000
            ? 'd'
            : (mode & 0o170000) === 0o120000
              ? 'l'
              : 'f';
        lines.push(
          kind === 'd' ? `d ${name}` : `${kind} ${name} ${mode & 0o7777} ${e.uncompressedSize} ${e.crc32}`,
        );
        zip.readEntry();
      });
      zip.on('end', () => resolve(lines.sort().join('\n')));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}
