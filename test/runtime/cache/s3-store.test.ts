/**
 * The S3 cache store against a real S3-compatible server (moto, started here): GitLab Runner's
 * object names, the `cachekey` metadata, streaming downloads, a missing key, path-style addressing.
 */
import t from 'tap';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { S3CacheStore, s3ClientConfig } from '../../../src/runtime/cache/s3-store.js';
import { cacheObjectName } from '../../../src/runtime/cache/cache-key.js';
import type { CacheS3Spec } from '../../../src/model/fleet.js';
import { requireMotoOrSkip, startMoto } from '../../helpers/topology/moto.js';

async function text(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

t.test(
  'client settings: path-style for non-AWS hosts, http when insecure, keys only for access-key',
  async (t) => {
    const spec: CacheS3Spec = {
      server_address: '127.0.0.1:9000',
      bucket_name: 'b',
      bucket_location: 'eu-west-1',
      insecure: true,
      authentication_type: 'access-key',
    };
    const c = s3ClientConfig(spec, { accessKeyId: 'a', secretAccessKey: 's' });
    t.equal(c.endpoint, 'http://127.0.0.1:9000');
    t.equal(c.forcePathStyle, true);
    t.equal(c.region, 'eu-west-1');
    const aws = s3ClientConfig({ ...spec, server_address: 's3.amazonaws.com', insecure: false }, undefined);
    t.equal(aws.endpoint, undefined, "Amazon's default endpoint is the SDK's own");
    t.equal(aws.forcePathStyle, false, 'virtual-host buckets on AWS');
    t.equal(aws.credentials, undefined, 'iam: the SDK credential chain');
    const regional = s3ClientConfig(
      { ...spec, server_address: 's3.eu-west-1.amazonaws.com', insecure: false },
      undefined,
    );
    t.equal(regional.endpoint, 'https://s3.eu-west-1.amazonaws.com');
    t.equal(regional.forcePathStyle, false);
  },
);

t.test('put, get and miss against moto', async (t) => {
  if (!requireMotoOrSkip(t)) return;
  const moto = await startMoto(t);
  const spec: CacheS3Spec = {
    server_address: moto.address,
    bucket_name: 'runner-cache',
    bucket_location: 'eu-west-1',
    insecure: true,
    authentication_type: 'access-key',
  };
  const keys = { accessKeyId: 'AKIDCACHETEST', secretAccessKey: 'cache-secret-key-value' };
  const client = new S3Client(s3ClientConfig(spec, keys));
  t.teardown(() => client.destroy());
  await client.send(
    new CreateBucketCommand({
      Bucket: 'runner-cache',
      CreateBucketConfiguration: { LocationConstraint: 'eu-west-1' },
    }),
  );
  const layout = { path: 'ci-cache', shared: false, shortToken: 'abcdefghi' };
  const store = new S3CacheStore({
    client,
    spec,
    objectName: (k) => cacheObjectName(layout, 42, k),
    secrets: [keys.secretAccessKey],
  });
  const signal = new AbortController().signal;

  t.equal(await store.get('main/deps', signal), undefined, 'a key never written is a miss');

  const dir = mkdtempSync(join(tmpdir(), 'rf-s3-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // 6 MiB: more than one multipart part (5 MiB), so the upload streams in parts.
  const payload = Buffer.alloc(6 * 1024 * 1024 + 17, 7);
  payload.write('PK', 0);
  const file = join(dir, 'cache.zip');
  writeFileSync(file, payload);
  await store.put('main/deps', file, payload.length, { cachekey: 'main/deps' }, signal);

  const head = await client.send(
    new HeadObjectCommand({ Bucket: 'runner-cache', Key: 'ci-cache/runner/abcdefghi/project/42/main/deps' }),
  );
  t.equal(head.ContentLength, payload.length, "stored under GitLab Runner's object name");
  t.same(head.Metadata, { cachekey: 'main/deps' }, 'with the human key as x-amz-meta-cachekey');

  const got = await store.get('main/deps', signal);
  t.ok(got, 'found');
  t.equal(got?.size, payload.length);
  t.ok((await text(got!.body)).equals(payload), 'the same bytes come back');
  t.equal(
    store.where('main/deps'),
    `${moto.endpoint}/runner-cache/ci-cache/runner/abcdefghi/project/42/main/deps`,
    'the log names the object path-style, without credentials',
  );
  t.ok(
    moto
      .requests()
      .some((r) => r.startsWith('PUT /runner-cache/ci-cache/runner/abcdefghi/project/42/main/deps')),
    'path-style requests',
  );

  t.throws(
    () => store.where('../../x'),
    /outside of project bucket/,
    'a key leaving the project prefix is refused',
  );
});
