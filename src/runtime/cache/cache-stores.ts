/**
 * Which store holds a job's caches (docs/caches.md, "Where caches live"):
 *
 * - `cache: {type: s3}`: the bucket, with GitLab Runner's object names. One SDK client per fleet
 *   and cache block, built by the composition root's factory once the keys are resolved.
 * - `cache: {type: local}`: `<state dir>/cache` on the manager, with the same object names.
 * - no cache block, local provider: `<state dir>/cache/<project path>/<key>/cache.zip`, one
 *   directory every sandbox shares, so a second run on a new sandbox finds the first one's cache.
 * - no cache block, any other instance: on the instance, `/tmp/runfleet-cache/<project path>/<key>/cache.zip`
 *   (the builds dir's sibling, as GitLab Runner's non-distributed cache), for instances that run
 *   more than one job.
 */
import { join } from 'node:path';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type { CacheSpec, Fleet } from '../../model/fleet.js';
import type { ConnectInfo } from '../../providers/provider.js';
import type { Connector } from '../connectors/connector.js';
import type { JobPayload } from '../gitlab/job.js';
import { projectPath } from '../script/layout.js';
import { resolveSecret } from '../secrets.js';
import { cacheObjectName, localCachePath } from './cache-key.js';
import type { CacheStore } from './cache-store.js';
import { DirectoryCacheStore } from './directory-store.js';
import { InstanceCacheStore } from './instance-store.js';
import type { S3Keys } from './s3-store.js';

/** The cache dir on remote instances: the sibling of the builds dir (executor-factory.ts). */
export const REMOTE_CACHE_DIR = '/tmp/runfleet-cache';

export interface CacheStoresOptions {
  /** runfleet's state directory; the manager-side caches live in `<stateDir>/cache`. */
  stateDir: string;
  /**
   * Builds an S3 client (the composition root passes one that loads the SDK on first use, so
   * commands without an S3 cache never load it).
   */
  s3Client: (config: S3ClientConfig) => Promise<S3Client>;
  env?: NodeJS.ProcessEnv;
}

export interface JobStoreRequest {
  fleet: Fleet;
  info: ConnectInfo;
  connector: Connector;
  job: JobPayload;
  /** The runner's short token (`runner/<short token>/` of object names). */
  shortToken: string;
}

interface S3Entry {
  key: string;
  client: Promise<{ client: S3Client; secrets: string[] }>;
}

export class CacheStores {
  private readonly s3 = new Map<string, S3Entry>();

  constructor(private readonly opts: CacheStoresOptions) {}

  get cacheDir(): string {
    return join(this.opts.stateDir, 'cache');
  }

  /** The store of one job. Rejects (naming the reference, never a value) when a key cannot be read. */
  async forJob(req: JobStoreRequest): Promise<CacheStore> {
    const { fleet, job } = req;
    const cache = fleet.cache;
    if (cache) {
      const layout = { path: cache.path, shared: cache.shared, shortToken: req.shortToken };
      const objectName = (key: string) => cacheObjectName(layout, job.job_info.project_id, key);
      if (cache.type === 'local') return new DirectoryCacheStore(this.cacheDir, objectName);
      const { client, secrets } = await this.client(fleet.name, cache);
      const { S3CacheStore } = await import('./s3-store.js');
      return new S3CacheStore({ client, spec: cache.s3!, objectName, secrets });
    }
    const project = projectPath(job);
    const name = (key: string) => localCachePath(project, key);
    if (req.info.protocol === 'local') return new DirectoryCacheStore(this.cacheDir, name);
    return new InstanceCacheStore(req.connector, REMOTE_CACHE_DIR, name);
  }

  /** Ends every client. */
  destroy(): void {
    for (const e of this.s3.values()) void e.client.then((c) => c.client.destroy()).catch(() => undefined);
    this.s3.clear();
  }

  private client(fleet: string, cache: CacheSpec): Promise<{ client: S3Client; secrets: string[] }> {
    const key = JSON.stringify(cache);
    const known = this.s3.get(fleet);
    if (known?.key === key) return known.client;
    if (known) void known.client.then((c) => c.client.destroy()).catch(() => undefined);
    const client = (async () => {
      const s3 = cache.s3!;
      let keys: S3Keys | undefined;
      if (s3.authentication_type === 'access-key' && s3.access_key && s3.secret_key) {
        keys = {
          accessKeyId: await resolveSecret(
            s3.access_key,
            `fleet ${fleet} cache.s3.access_key`,
            this.opts.env,
          ),
          secretAccessKey: await resolveSecret(
            s3.secret_key,
            `fleet ${fleet} cache.s3.secret_key`,
            this.opts.env,
          ),
        };
      }
      const { s3ClientConfig } = await import('./s3-store.js');
      return {
        client: await this.opts.s3Client(s3ClientConfig(s3, keys)),
        secrets: keys ? [keys.accessKeyId, keys.secretAccessKey] : [],
      };
    })();
    // A key that could not be read is tried again on the next job.
    client.catch(() => this.s3.get(fleet)?.client === client && this.s3.delete(fleet));
    this.s3.set(fleet, { key, client });
    return client;
  }
}
