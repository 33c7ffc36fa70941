/**
 * The distributed cache in an S3-compatible bucket, the way GitLab Runner keeps it: one object per
 * key named `[<path>/][runner/<short token>/]project/<id>/<key>` holding the zip, with the human
 * key as `x-amz-meta-cachekey`. The manager talks to the bucket with the AWS SDK (built by the
 * composition root, which passes `S3Client`s in); instances never see credentials or URLs.
 * Downloads stream; uploads go through `@aws-sdk/lib-storage`, multipart past 5 MiB.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { GetObjectCommand, type S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { CacheS3Spec } from '../../model/fleet.js';
import type { CacheArchive, CacheStore } from './cache-store.js';

/** Resolved S3 credentials (secret: never logged). */
export interface S3Keys {
  accessKeyId: string;
  secretAccessKey: string;
}

const AWS_HOST = /(^|\.)amazonaws\.com(\.cn)?(:443)?$/i;

/** The endpoint URL of `spec` (`http(s)://host[:port]`), or undefined for Amazon's default. */
export function s3Endpoint(spec: CacheS3Spec): string | undefined {
  if (spec.server_address === 's3.amazonaws.com') return undefined;
  return `${spec.insecure ? 'http' : 'https'}://${spec.server_address}`;
}

/**
 * The SDK client settings for `spec`: the region, the endpoint for hosts other than Amazon's
 * (addressed path-style, as GitLab Runner does for hosts without virtual-host buckets), and the
 * keys for `access-key` authentication; `iam` leaves credentials to the SDK's default chain.
 */
export function s3ClientConfig(spec: CacheS3Spec, keys: S3Keys | undefined): S3ClientConfig {
  const endpoint = s3Endpoint(spec);
  return {
    region: spec.bucket_location,
    ...(endpoint !== undefined && { endpoint }),
    forcePathStyle: !AWS_HOST.test(spec.server_address),
    ...(keys !== undefined && { credentials: { ...keys } }),
    // GitLab Runner sends no checksums on its presigned PUTs; S3-compatible servers differ in
    // what they accept, so only send them when the operation needs one.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
}

export interface S3CacheStoreOptions {
  client: S3Client;
  spec: CacheS3Spec;
  /** Object name of a key (cache-key.ts `cacheObjectName`); undefined refuses the key. */
  objectName: (key: string) => string | undefined;
  /** Values to keep out of error messages (the keys). */
  secrets?: string[];
}

export class S3CacheStore implements CacheStore {
  constructor(private readonly opts: S3CacheStoreOptions) {}

  private name(key: string): string {
    const name = this.opts.objectName(key);
    if (name === undefined) {
      throw new Error(`computed cache path outside of project bucket. Please remove \`../\` from cache key`);
    }
    return name;
  }

  where(key: string): string {
    const { spec } = this.opts;
    const endpoint = s3Endpoint(spec);
    const name = this.name(key).split('/').map(encodeURIComponent).join('/');
    if (endpoint === undefined)
      return `https://${spec.bucket_name}.s3.${spec.bucket_location}.amazonaws.com/${name}`;
    return AWS_HOST.test(spec.server_address)
      ? `${endpoint.replace('://', `://${spec.bucket_name}.`)}/${name}`
      : `${endpoint}/${spec.bucket_name}/${name}`;
  }

  async get(key: string, signal: AbortSignal): Promise<CacheArchive | undefined> {
    try {
      const r = await this.opts.client.send(
        new GetObjectCommand({ Bucket: this.opts.spec.bucket_name, Key: this.name(key) }),
        { abortSignal: signal },
      );
      if (!r.Body) return undefined;
      return { body: r.Body as Readable, ...(r.ContentLength !== undefined && { size: r.ContentLength }) };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw this.clean(e);
    }
  }

  async put(
    key: string,
    file: string,
    _size: number,
    metadata: Record<string, string>,
    signal: AbortSignal,
  ): Promise<void> {
    const upload = new Upload({
      client: this.opts.client,
      params: {
        Bucket: this.opts.spec.bucket_name,
        Key: this.name(key),
        Body: createReadStream(file),
        ContentType: 'application/zip',
        Metadata: metadata,
      },
      // One part at a time: a cache upload shares the manager with every other job.
      queueSize: 1,
      abortController: abortControllerOf(signal),
    });
    try {
      await upload.done();
    } catch (e) {
      throw this.clean(e);
    }
  }

  /** An SDK error as a plain Error whose message holds no secret (and no response body). */
  private clean(e: unknown): Error {
    let message = e instanceof Error ? e.message : String(e);
    const code = (e as { name?: string }).name;
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    for (const s of this.opts.secrets ?? []) if (s) message = message.split(s).join('[MASKED]');
    return new Error(
      `${code && code !== 'Error' ? `${code}: ` : ''}${message}${status ? ` (HTTP ${status})` : ''}`,
    );
  }
}

function isNotFound(e: unknown): boolean {
  const name = (e as { name?: string }).name;
  const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return name === 'NoSuchKey' || name === 'NotFound' || status === 404;
}

/** lib-storage takes an AbortController; this one follows `signal`. */
function abortControllerOf(signal: AbortSignal): AbortController {
  const c = new AbortController();
  if (signal.aborted) c.abort();
  else signal.addEventListener('abort', () => c.abort(), { once: true });
  return c;
}
