/**
 * Caches through the real manager: every job gets a fresh instance (a real sshd on its own
 * 127.x address, `max_use_count: 1`), and the cache lives in a real S3-compatible server (moto,
 * started here) with GitLab Runner's object names. A cache written by a job on one instance is
 * restored by a job on another; a pull-only job and a job that changed nothing upload nothing;
 * fallback keys are tried in order; `when: on_failure` saves only after a failure; the S3 keys
 * appear in no job log and no manager log line.
 */
import t from 'tap';
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { rmSync } from 'node:fs';
import { exampleJob } from '../../../src/devtools/coordinator/example-job.js';
import { REMOTE_BUILDS_DIR } from '../../../src/runtime/executor-factory.js';
import type { JobCache } from '../../../src/runtime/gitlab/job.js';
import { createSshdProvider } from '../../helpers/sshd-provider.js';
import { requireMotoOrSkip, startMoto } from '../../helpers/topology/moto.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startHarness } from './harness.js';

const FLEET = 'it-caches';
const ACCESS_KEY = 'AKIARUNFLEETCACHE01';
const SECRET_KEY = 'runfleet-cache-secret-Zx81Qp';
const BUCKET = 'runner-cache';
const PROJECT = 7;

if (requireOrSkip(t, 'sshd', 'ssh-keygen') && requireMotoOrSkip(t)) {
  const moto = await startMoto(t);
  const s3 = new S3Client({
    region: 'eu-west-1',
    endpoint: moto.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
  });
  t.teardown(() => s3.destroy());
  await s3.send(
    new CreateBucketCommand({
      Bucket: BUCKET,
      CreateBucketConfiguration: { LocationConstraint: 'eu-west-1' },
    }),
  );

  const provider = createSshdProvider(t);
  const h = await startHarness(t, {
    fleetName: FLEET,
    providers: () => provider,
    env: { IT_CACHE_ACCESS_KEY: ACCESS_KEY, IT_CACHE_SECRET_KEY: SECRET_KEY },
    fleetYaml: [
      `name: ${FLEET}`,
      'provider: { type: local }',
      'executor: instance',
      'capacity_per_instance: 1',
      'max_instances: 2',
      // One job per instance: every job runs on an instance no job ran on before.
      'max_use_count: 1',
      'policy:',
      '  - idle_count: 1',
      '    idle_time: 10m',
      'cache:',
      '  type: s3',
      '  path: ci-cache',
      '  s3:',
      `    server_address: ${moto.address}`,
      `    bucket_name: ${BUCKET}`,
      '    bucket_location: eu-west-1',
      '    insecure: true',
      '    access_key: { env: IT_CACHE_ACCESS_KEY }',
      '    secret_key: { env: IT_CACHE_SECRET_KEY }',
    ].join('\n'),
  });
  // The runner segment is the first 9 characters of the token after `glrt-` (the harness makes
  // `glrt-it<hex>`); the first upload shows which.
  let runnerSegment = '';
  const objectKey = (key: string) => `ci-cache/runner/${runnerSegment}/project/${PROJECT}/${key}`;
  const puts = () => moto.requests().filter((r) => r.startsWith('PUT ') || r.startsWith('POST ')).length;
  const instanceOf = (log: string) => /executor on instance (\S+)/.exec(log)?.[1];

  // Every test instance is an sshd on this machine, so all share one builds dir: it is emptied
  // before each job, as on a new instance, so what a job finds came from the cache.
  const project = `cached-${process.pid}`;
  const buildsDir = `${REMOTE_BUILDS_DIR}/${h.shortToken}/0/acme/${project}`;
  t.teardown(() => rmSync(buildsDir, { recursive: true, force: true }));
  const run = async (id: number, script: string[], cache: JobCache[]) => {
    rmSync(buildsDir, { recursive: true, force: true });
    h.coordinator.enqueue({
      ...exampleJob(id, { projectName: project, projectId: PROJECT, serverUrl: h.coordinator.url, script }),
      cache,
    });
    return h.finished(id, 60_000);
  };

  const logs: string[] = [];
  let firstInstance: string | undefined;

  t.test('pull-push on one instance: a miss, then the archive goes to the bucket', async (t) => {
    const job = await run(
      1,
      ['mkdir -p vendor/lib', 'echo "v1" > vendor/lib/dep.txt', 'echo data > vendor/blob'],
      [{ key: 'deps-$CI_COMMIT_REF_NAME', paths: ['vendor/'], policy: 'pull-push', when: 'on_success' }],
    );
    logs.push(job.log);
    t.equal(job.state, 'success', job.log);
    firstInstance = instanceOf(job.log);
    runnerSegment =
      /Uploading cache\.zip to \S+\/ci-cache\/runner\/([^/]+)\/project\//.exec(job.log)?.[1] ?? '';
    t.match(runnerSegment, /^it[0-9a-f]{7}$/, 'runner/<short token>: 9 characters of the token after glrt-');
    t.match(job.log, /section_start:\d+:restore_cache/);
    t.match(job.log, 'Checking cache for deps-main...');
    t.match(job.log, 'WARNING: file does not exist');
    t.match(job.log, 'Failed to extract cache');
    t.match(job.log, 'Saving cache for successful job');
    t.match(job.log, 'Creating cache deps-main...');
    t.match(job.log, 'vendor: found 4 matching artifact files and directories');
    t.match(job.log, `Uploading cache.zip to ${moto.endpoint}/${BUCKET}/${objectKey('deps-main')}`);
    t.match(job.log, 'Created cache');
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: objectKey('deps-main') }));
    t.same(head.Metadata, { cachekey: 'deps-main' }, "GitLab Runner's object name and metadata");
  });

  t.test('pull on another instance: restored, and nothing is uploaded', async (t) => {
    const before = puts();
    const job = await run(
      2,
      ['cat vendor/lib/dep.txt', 'echo changed > vendor/lib/dep.txt'],
      [{ key: 'deps-main', paths: ['vendor/'], policy: 'pull' }],
    );
    logs.push(job.log);
    t.equal(job.state, 'success', job.log);
    t.not(instanceOf(job.log), firstInstance, `ran on another instance (${instanceOf(job.log)})`);
    t.match(job.log, 'Checking cache for deps-main...');
    t.match(job.log, `Downloading cache.zip from ${moto.endpoint}/${BUCKET}/${objectKey('deps-main')}`);
    t.match(job.log, 'Successfully extracted cache');
    // The line as the job printed it, after its per-line timestamp (FF_TIMESTAMPS).
    t.match(job.log, /(^|\n)(\S+Z [0-9a-f]{2}[OE][ +])?v1\r?\n/, "the first job's file is there");
    t.match(job.log, 'Not uploading cache deps-main due to policy');
    t.equal(puts(), before, 'no upload request reached the bucket');
  });

  t.test('pull-push that changed nothing: "Archive is up to date!", no upload', async (t) => {
    const before = puts();
    const job = await run(
      3,
      ['test -f vendor/blob && echo "blob is back"'],
      [{ key: 'deps-main', paths: ['vendor/'] }],
    );
    logs.push(job.log);
    t.equal(job.state, 'success', job.log);
    t.match(job.log, 'blob is back');
    t.match(job.log, 'Archive is up to date!');
    t.notMatch(job.log, 'Uploading cache.zip');
    t.equal(puts(), before, 'the unchanged cache was not uploaded again');
  });

  t.test(
    'fallback keys: the first key misses, the fallback restores, the job saves under its own key',
    async (t) => {
      const job = await run(
        4,
        ['cat vendor/lib/dep.txt', 'echo v2 > vendor/lib/dep.txt'],
        [{ key: 'feature-x', paths: ['vendor/'], fallback_keys: ['nothing-here', 'deps-main'] }],
      );
      logs.push(job.log);
      t.equal(job.state, 'success', job.log);
      const order = [
        'Checking cache for feature-x...',
        'Checking cache for nothing-here...',
        'Checking cache for deps-main...',
        'Successfully extracted cache',
      ];
      const at = order.map((l) => job.log.indexOf(l));
      t.ok(
        at.every((i, n) => i >= 0 && (n === 0 || i > at[n - 1]!)),
        `tried in order: ${JSON.stringify(at)}`,
      );
      t.match(job.log, `Uploading cache.zip to ${moto.endpoint}/${BUCKET}/${objectKey('feature-x')}`);
      const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: objectKey('feature-x') }));
      t.ok(head.ContentLength! > 0, 'saved under the job key');
    },
  );

  t.test('when: on_failure saves after a failure only; an on_success entry is not saved then', async (t) => {
    const job = await run(
      5,
      ['mkdir -p logs out', 'echo boom > logs/crash.txt', 'echo o > out/o', 'exit 4'],
      [
        { key: 'crash-logs', paths: ['logs/'], when: 'on_failure' },
        { key: 'outputs', paths: ['out/'], when: 'on_success' },
      ],
    );
    logs.push(job.log);
    t.equal(job.state, 'failed');
    t.equal(job.exit_code, 4, 'the job keeps its own failure');
    t.match(job.log, /section_start:\d+:archive_cache_on_failure/);
    t.match(job.log, 'Saving cache for failed job');
    t.match(job.log, 'Creating cache crash-logs...');
    t.notMatch(job.log, 'Creating cache outputs...');
    await t.resolves(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: objectKey('crash-logs') })));
    await t.rejects(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: objectKey('outputs') })));
  });

  t.test('the S3 keys are in no job log and no manager log', async (t) => {
    const all = [...logs, JSON.stringify(h.logs)].join('\n');
    t.notOk(all.includes(SECRET_KEY), 'secret key absent');
    t.notOk(all.includes(ACCESS_KEY), 'access key absent');
  });
}
