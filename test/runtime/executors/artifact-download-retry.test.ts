/**
 * `download_artifacts` retries the way gitlab-runner does, against a real HTTP server on loopback
 * and a local sandbox: the helper's three tries a second apart on 5xx (direct_download only on
 * the first), none on 404; the stage's `ARTIFACT_DOWNLOAD_ATTEMPTS` (every dependency again, any
 * error, `Retrying in 5s` with FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY's backoff, no wait with
 * the flag off); 1 when the variable is not a number; out of [1, 10] fails the stage.
 */
import { createServer, type ServerResponse } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import yazl from 'yazl';
import { exampleJob } from '../../../src/devtools/coordinator/example-job.js';
import { LocalConnector } from '../../../src/runtime/connectors/local-connector.js';
import {
  ArtifactStages,
  goDurationString,
  stageRetryDelayMs,
} from '../../../src/runtime/executors/artifact-stages.js';
import type { JobOutput } from '../../../src/runtime/executors/executor.js';
import { ArtifactsApi } from '../../../src/runtime/gitlab/artifacts-api.js';
import { timeOf, type Time } from '../../../src/util/time.js';

const work = mkdtempSync(join(tmpdir(), 'rf-dl-retry-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

const zip = await new Promise<Buffer>((resolve) => {
  const z = new yazl.ZipFile();
  z.addBuffer(Buffer.from('built\n'), 'out/app.txt');
  z.end();
  const chunks: Buffer[] = [];
  z.outputStream.on('data', (c: Buffer) => chunks.push(c));
  z.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
});

/** Answers each GET with the next status of `script` (200: the zip); records the URLs. */
async function gitlab(t: Test, script: number[]) {
  const urls: string[] = [];
  const s = createServer((req, res: ServerResponse) => {
    urls.push(req.url ?? '');
    const status = script[urls.length - 1] ?? 200;
    if (status === 200) {
      res.writeHead(200, { 'Content-Length': String(zip.length) });
      res.end(zip);
    } else {
      res.writeHead(status);
      res.end(String(status));
    }
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => s.close(() => r())));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, urls };
}

/** A Time whose sleeps return at once and are recorded. */
function recordingTime(): { time: Time; sleeps: number[] } {
  const sleeps: number[] = [];
  const time = timeOf(
    () => new Date(),
    (_ms, fn) => {
      const h = setImmediate(fn);
      return { cancel: () => clearImmediate(h) };
    },
  );
  return {
    sleeps,
    time: { ...time, sleep: (ms, signal) => (sleeps.push(ms), time.sleep(0, signal)) },
  };
}

async function run(t: Test, script: number[], variables: Record<string, string>) {
  const server = await gitlab(t, script);
  const { time, sleeps } = recordingTime();
  const dir = mkdtempSync(join(work, 'job-'));
  const job = exampleJob(2, {
    variables,
    dependencies: [
      { id: 1, name: 'build', token: 'glcbt-dep', artifacts_file: { filename: 'a.zip', size: zip.length } },
    ],
  });
  const stages = new ArtifactStages({
    job,
    api: new ArtifactsApi({ baseUrl: `${server.url}/api/v4/`, userAgent: 'test', time, scrub: (s) => s }),
    connector: new LocalConnector({ workdir: dir }),
    projectDir: () => join(dir, 'project'),
    time,
    random: () => 0.5,
  });
  let log = '';
  const output: JobOutput = { write: (c) => void (log += String(c)), section: (_n, fn) => fn() };
  const result = await stages.download(output, new AbortController().signal).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  const file = (): string => readFileSync(join(dir, 'project/out/app.txt'), 'utf8');
  return { result, log, sleeps, urls: server.urls, file };
}

const path = '/api/v4/jobs/1/artifacts';

t.test('5xx: the helper tries three times a second apart, direct_download on the first only', async (t) => {
  const r = await run(t, [500, 502], {});
  t.equal(r.result, undefined, 'the third try succeeds');
  t.same(r.urls, [`${path}?direct_download=true`, path, path]);
  t.same(r.sleeps, [1000, 1000]);
  t.equal(r.file(), 'built\n');
  t.match(r.log, /500 Internal Server Error {2}id=1, retrying/);
});

t.test('5xx three times fails the attempt; ARTIFACT_DOWNLOAD_ATTEMPTS=2 runs it again', async (t) => {
  const r = await run(t, [503, 503, 503], { ARTIFACT_DOWNLOAD_ATTEMPTS: '2' });
  t.equal(r.result, undefined);
  t.same(r.urls, [`${path}?direct_download=true`, path, path, `${path}?direct_download=true`]);
  t.same(r.sleeps, [1000, 1000, 5000], 'the helper’s two waits, then the stage’s first backoff');
  t.match(r.log, 'Retrying in 5s\n');
  t.equal(r.file(), 'built\n');
});

t.test(
  '404 is not retried by the helper, but by the stage; then it fails naming the dependency',
  async (t) => {
    const r = await run(t, [404, 404, 404], { ARTIFACT_DOWNLOAD_ATTEMPTS: '3' });
    t.match(r.result, { message: 'cannot download the artifacts of build (job 1): 404 Not Found' });
    t.same(
      r.urls,
      [1, 2, 3].map(() => `${path}?direct_download=true`),
    );
    t.same(r.sleeps, [5000, stageRetryDelayMs(1, () => 0.5)], 'two stage waits, jittered');
    t.equal(r.log.split('Retrying in ').length - 1, 2);
  },
);

t.test('FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY=false: stage attempts follow at once', async (t) => {
  const r = await run(t, [404, 404], {
    ARTIFACT_DOWNLOAD_ATTEMPTS: '2',
    FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY: 'false',
  });
  t.match(r.result, { message: /404/ });
  t.equal(r.urls.length, 2);
  t.same(r.sleeps, []);
  t.notMatch(r.log, 'Retrying in');
});

t.test('ARTIFACT_DOWNLOAD_ATTEMPTS: not a number means 1; outside 1..10 fails the stage', async (t) => {
  const one = await run(t, [404], { ARTIFACT_DOWNLOAD_ATTEMPTS: 'three' });
  t.equal(one.urls.length, 1);
  t.match(one.result, { message: /404/ });
  for (const bad of ['0', '11', '-1']) {
    const r = await run(t, [], { ARTIFACT_DOWNLOAD_ATTEMPTS: bad });
    t.match(r.result, {
      message: 'number of attempts out of the range [1, 10] for stage: download_artifacts',
    });
    t.same(r.urls, [], `${bad}: nothing downloaded`);
  }
});

t.test('the stage backoff is jpillora/backoff {5s, 5m, ×1.5, jitter}; printed as Go does', async (t) => {
  t.equal(
    stageRetryDelayMs(0, () => 0.99),
    5000,
    'first wait: always 5s',
  );
  t.equal(
    stageRetryDelayMs(1, () => 0),
    5000,
  );
  t.equal(
    stageRetryDelayMs(1, () => 1),
    7500,
  );
  t.equal(
    stageRetryDelayMs(2, () => 0.5),
    Math.round(5000 + 0.5 * (11250 - 5000)),
  );
  t.equal(
    stageRetryDelayMs(30, () => 1),
    300_000,
    'at most 5 min',
  );
  t.equal(goDurationString(5000), '5s');
  t.equal(goDurationString(7250), '7.25s');
  t.equal(goDurationString(62_500), '1m2.5s');
  t.equal(goDurationString(300_000), '5m0s');
});
