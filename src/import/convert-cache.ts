/**
 * `[runners.cache]` and `[runners.cache.s3]` -> the fleet's `cache` block (GitLab Runner's names in
 * snake_case). The keys are never read: `access_key` and `secret_key` become `{env: ...}`
 * references the import names per fleet (`cacheKeyEnvFor`), and the report says which variable
 * to set. GCS and Azure caches are not carried over (runfleet has S3 and local).
 */
import {
  carried,
  carry,
  differs,
  notCarried,
  reportLeftovers,
  type FleetObject,
  type RunnerContext,
} from './context.js';
import type { Section } from './table.js';

/** Stands for a key written in config.toml until the fleet is named (import.ts replaces it). */
export const KEY_FROM_CONFIG = Object.freeze({ env: '(named by import)' });

const CACHE_NOT_CARRIED: Record<string, string> = {
  gcs: 'runfleet keeps caches in S3-compatible storage or a local directory; no GCS',
  azure: 'runfleet keeps caches in S3-compatible storage or a local directory; no Azure',
};

const S3_NOT_CARRIED: Record<string, string> = {
  SessionToken:
    'runfleet signs with access_key and secret_key, or the SDK credential chain (authentication_type: iam)',
  ServerSideEncryption:
    'the fleet schema has no server-side encryption setting; set a default encryption on the bucket',
  ServerSideEncryptionKeyID:
    'the fleet schema has no server-side encryption setting; set a default encryption on the bucket',
  DualStack: 'runfleet uses the endpoint as given',
  PathStyle: "runfleet addresses hosts other than Amazon's path-style, and Amazon's virtual-host style",
  Accelerate: 'runfleet uses the endpoint as given',
  RoleARN:
    "runfleet uses authentication_type: iam (the manager's own credentials) instead of an assumed role",
  UploadRoleARN:
    "runfleet uses authentication_type: iam (the manager's own credentials) instead of an assumed role",
};

export function convertCache(ctx: RunnerContext, cache: Section | undefined): void {
  if (!cache) return;
  const type = cache.string('Type');
  if (type === undefined || type === '') {
    cache.skip('Type');
    for (const key of cache.leftover()) cache.skip(key);
    notCarried(
      ctx,
      cache.name,
      'no Type: GitLab Runner keeps caches on the instance, and so does runfleet without a cache block',
    );
    return;
  }
  if (type.toLowerCase() !== 's3') {
    for (const key of cache.leftover()) cache.skip(key);
    notCarried(
      ctx,
      cache.name,
      `Type ${JSON.stringify(type)}: runfleet keeps caches in S3-compatible storage or a local directory`,
    );
    return;
  }
  const out: FleetObject = { type: 's3' };
  carried(ctx, cache, 'Type', 'cache.type');
  carry(ctx, cache, 'Path', 'string', out, 'path', 'cache.path');
  carry(ctx, cache, 'Shared', 'boolean', out, 'shared', 'cache.shared');
  carry(
    ctx,
    cache,
    'MaxUploadedArchiveSize',
    'integer',
    out,
    'max_uploaded_archive_size',
    'cache.max_uploaded_archive_size',
  );
  const s3 = cache.sub('s3');
  if (!s3) {
    ctx.blockers.push(
      cache.problem('Type', `${cache.setting('Type')} is s3 but there is no [${cache.name}.s3] section`),
    );
  } else {
    out.s3 = convertS3(ctx, s3);
  }
  ctx.fleet.cache = out;
  reportLeftovers(ctx, cache, (key) => CACHE_NOT_CARRIED[key]);
}

function convertS3(ctx: RunnerContext, s3: Section): FleetObject {
  const out: FleetObject = {};
  for (const [key, field] of [
    ['ServerAddress', 'server_address'],
    ['BucketName', 'bucket_name'],
    ['BucketLocation', 'bucket_location'],
  ] as const) {
    carry(ctx, s3, key, 'string', out, field, `cache.s3.${field}`);
  }
  carry(ctx, s3, 'Insecure', 'boolean', out, 'insecure', 'cache.s3.insecure');
  const auth = s3.string('AuthenticationType');
  if (auth !== undefined && auth !== '') {
    const lower = auth.toLowerCase();
    if (lower === 'access-key' || lower === 'iam') {
      out.authentication_type = lower;
      carried(ctx, s3, 'AuthenticationType', 'cache.s3.authentication_type');
    } else {
      ctx.blockers.push(
        s3.problem('AuthenticationType', `${s3.setting('AuthenticationType')} must be access-key or iam`),
      );
    }
  }
  // Noted, never read: the values are secrets.
  for (const [key, field] of [
    ['AccessKey', 'access_key'],
    ['SecretKey', 'secret_key'],
  ] as const) {
    const written = s3.has(key);
    s3.skip(key);
    if (!written) continue;
    out[field] = KEY_FROM_CONFIG;
    carried(ctx, s3, key, `cache.s3.${field} (an environment variable; the key is not written)`);
  }
  if (
    out.authentication_type === undefined &&
    (out.access_key === undefined) !== (out.secret_key === undefined)
  ) {
    differs(
      ctx,
      s3.setting(out.access_key ? 'AccessKey' : 'SecretKey'),
      'only one of the keys is set: GitLab Runner falls back to IAM; set both, or neither',
    );
  }
  reportLeftovers(ctx, s3, (key) => S3_NOT_CARRIED[key]);
  return out;
}
