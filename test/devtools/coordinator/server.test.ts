/** The coordinator against the spec's §7 checklist, with raw HTTP (no runfleet client in between). */
import t, { type Test } from 'tap';
import { crc32 } from 'node:zlib';
import { exampleJob } from '../../../src/devtools/coordinator/example-job.js';
import { startCoordinator } from '../../../src/devtools/coordinator/server.js';

const TOKEN = 'glrt-coordinatorTest123';

async function start(t: Test, opts: Parameters<typeof startCoordinator>[0] | object = {}) {
  const c = await startCoordinator({ runnerTokens: [TOKEN], ...opts });
  t.teardown(() => c.close());
  const api = (path: string, init: RequestInit = {}) => fetch(`${c.url}/api/v4/${path}`, init);
  const json = (method: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
    api(path, {
      method,
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
  return { c, api, json };
}

const crc = (s: string) => 'crc32:' + crc32(Buffer.from(s)).toString(16).padStart(8, '0');

t.test('verify: known token 200 with id/token/expiry, otherwise 403', async (t) => {
  const { json } = await start(t);
  const ok = await json('POST', 'runners/verify', { token: TOKEN, system_id: 's_000000000000' });
  t.equal(ok.status, 200);
  t.match(ok.headers.get('content-type'), /^application\/json/);
  t.same(await ok.json(), { id: 1, token: TOKEN, token_expires_at: null });
  t.equal((await json('POST', 'runners/verify', { token: 'glrt-nope' })).status, 403);
  t.equal((await json('POST', 'runners/verify', {}, { 'RUNNER-TOKEN': TOKEN })).status, 200, 'header token');
});

t.test('jobs/request: 403, 204 with X-GitLab-Last-Update, 201 with the job', async (t) => {
  const { c, json } = await start(t);
  t.equal((await json('POST', 'jobs/request', { token: 'glrt-nope' })).status, 403);
  const empty = await json('POST', 'jobs/request', { token: TOKEN });
  t.equal(empty.status, 204);
  const version = empty.headers.get('x-gitlab-last-update');
  t.match(version, /^[0-9a-f]+$/);
  c.enqueue(exampleJob(11, { name: 'build', script: ['make'], afterScript: ['echo bye'] }));
  const got = await json('POST', 'jobs/request', { token: TOKEN, last_update: version });
  t.equal(got.status, 201);
  t.match(got.headers.get('content-type'), /^application\/json/);
  t.not(got.headers.get('x-gitlab-last-update'), version);
  const job = (await got.json()) as ReturnType<typeof exampleJob>;
  t.equal(job.id, 11);
  t.match(job.token, /^glcbt-/);
  t.same(
    job.steps.map((s) => [s.name, s.when]),
    [
      ['script', 'on_success'],
      ['after_script', 'always'],
    ],
  );
  t.ok(job.variables.some((v) => v.key === 'CI_JOB_TOKEN' && v.masked));
  t.equal(c.job(11)?.state, 'running');
  t.equal(
    (await json('POST', 'jobs/request', { token: TOKEN })).status,
    204,
    'an assigned job is not handed out twice',
  );
});

t.test('jobs/request holds while last_update is current (long poll) and times out to 204', async (t) => {
  const { json } = await start(t, { longPollMs: 150 });
  const first = await json('POST', 'jobs/request', { token: TOKEN });
  const version = first.headers.get('x-gitlab-last-update') ?? '';
  const started = Date.now();
  const held = await json('POST', 'jobs/request', { token: TOKEN, last_update: version });
  t.equal(held.status, 204);
  t.ok(Date.now() - started >= 140, 'held for the long-poll duration');
});

t.test('injected 409, 429 with Retry-After, 503', async (t) => {
  const { c, json } = await start(t);
  c.inject({ kind: 'status', route: 'request', status: 429, retryAfterSeconds: 60 });
  c.inject({ kind: 'status', route: 'request', status: 409 });
  c.inject({ kind: 'status', route: 'request', status: 503 });
  const a = await json('POST', 'jobs/request', { token: TOKEN });
  t.equal(a.status, 429);
  t.equal(a.headers.get('retry-after'), '60');
  t.equal((await json('POST', 'jobs/request', { token: TOKEN })).status, 409);
  t.equal((await json('POST', 'jobs/request', { token: TOKEN })).status, 503);
  t.equal((await json('POST', 'jobs/request', { token: TOKEN })).status, 204, 'faults used up');
});

async function assigned(t: Test, opts: object = {}) {
  const s = await start(t, opts);
  s.c.enqueue(exampleJob(5));
  const job = (await (await s.json('POST', 'jobs/request', { token: TOKEN })).json()) as ReturnType<
    typeof exampleJob
  >;
  const patch = (start: number, text: string, headers: Record<string, string> = {}) =>
    s.api('jobs/5/trace?debug_trace=false', {
      method: 'PATCH',
      headers: {
        'JOB-TOKEN': job.token,
        'Content-Type': 'text/plain',
        'Content-Range': `${start}-${start + Buffer.byteLength(text) - 1}`,
        ...headers,
      },
      body: text,
    });
  return { ...s, job, patch };
}

t.test('PATCH trace: 400 without Content-Range, 416 off-offset, 202 with Range', async (t) => {
  const { api, job, patch } = await assigned(t, { traceUpdateIntervalSeconds: 3 });
  const noRange = await api('jobs/5/trace', {
    method: 'PATCH',
    headers: { 'JOB-TOKEN': job.token },
    body: 'x',
  });
  t.equal(noRange.status, 400);
  const ok = await patch(0, 'hello ');
  t.equal(ok.status, 202);
  t.equal(ok.headers.get('range'), '0-6');
  t.equal(ok.headers.get('job-status'), 'running');
  t.equal(ok.headers.get('x-gitlab-trace-update-interval'), '3');
  const off = await patch(2, 'zzz');
  t.equal(off.status, 416);
  t.equal(off.headers.get('range'), '0-6');
  t.equal((await patch(6, 'world', { 'JOB-TOKEN': 'glcbt-wrong' })).status, 403);
  t.equal((await patch(6, 'world')).status, 202);
});

t.test('PUT: token check, 200 "200" with headers, checksum verified', async (t) => {
  const { c, json, job, patch } = await assigned(t);
  t.equal((await json('PUT', 'jobs/5', { token: 'glcbt-wrong', state: 'running' })).status, 403);
  t.equal((await json('PUT', 'jobs/404', { token: job.token, state: 'running' })).status, 404);
  t.equal((await json('PUT', 'jobs/5', { token: job.token, state: 'bogus' })).status, 400);
  const alive = await json('PUT', 'jobs/5', { state: 'running' }, { 'JOB-TOKEN': job.token });
  t.equal(alive.status, 200);
  t.equal(await alive.text(), '200');
  t.equal(alive.headers.get('job-status'), 'running');
  t.equal(alive.headers.get('x-gitlab-trace-update-interval'), '3');

  await patch(0, 'log\n');
  const final = await json('PUT', 'jobs/5', {
    token: job.token,
    state: 'failed',
    failure_reason: 'not_a_reason',
    exit_code: 1,
    output: { checksum: crc('log\n'), bytesize: 4 },
  });
  t.equal(final.status, 200);
  t.equal(final.headers.get('job-status'), 'failed');
  t.match(c.job(5), {
    state: 'failed',
    failure_reason: 'unknown_failure',
    exit_code: 1,
    checksumOk: true,
    log: 'log\n',
  });
  const after = await json('PUT', 'jobs/5', { token: job.token, state: 'success' });
  t.equal(after.status, 403, 'a finished job takes no more updates');
  t.equal(after.headers.get('job-status'), 'failed');
});

t.test('a wrong checksum is recorded as such', async (t) => {
  const { c, json, job, patch } = await assigned(t);
  await patch(0, 'abc');
  await json('PUT', 'jobs/5', {
    token: job.token,
    state: 'success',
    output: { checksum: crc('abd'), bytesize: 3 },
  });
  t.equal(c.job(5)?.checksumOk, false);
});

t.test('graceful cancel: canceling on replies, canceled after the final PUT, 403 afterwards', async (t) => {
  const { c, json, job, patch } = await assigned(t);
  c.cancel(5, 'graceful');
  const p = await patch(0, 'x');
  t.equal(p.status, 202);
  t.equal(p.headers.get('job-status'), 'canceling');
  const final = await json('PUT', 'jobs/5', {
    token: job.token,
    state: 'failed',
    failure_reason: 'unknown_failure',
  });
  t.equal(final.status, 200);
  t.equal(c.job(5)?.state, 'canceled');
  const later = await patch(1, 'y');
  t.equal(later.status, 403);
  t.equal(later.headers.get('job-status'), 'canceled');
});

t.test('forced 202 and 412 apply only to final updates with a checksum', async (t) => {
  const { c, json, job } = await assigned(t);
  c.inject({ kind: 'update-accepted', jobId: 5 });
  t.equal(
    (await json('PUT', 'jobs/5', { token: job.token, state: 'running' })).status,
    200,
    'keep-alive unaffected',
  );
  const body = { token: job.token, state: 'success', output: { checksum: crc(''), bytesize: 0 } };
  t.equal((await json('PUT', 'jobs/5', body)).status, 202);
  c.inject({ kind: 'update-reset-trace', jobId: 5 });
  t.equal((await json('PUT', 'jobs/5', body)).status, 412);
  t.equal((await json('PUT', 'jobs/5', body)).status, 200);
  t.equal(c.job(5)?.state, 'success');
});

t.test('artifacts: upload stores the file part and query, download returns it', async (t) => {
  const { c, api, job } = await assigned(t);
  const form = new FormData();
  form.append('file', new Blob([Buffer.from('PK\u0003\u0004zip')]), 'artifacts.zip');
  const up = await api('jobs/5/artifacts?artifact_format=zip&artifact_type=archive&expire_in=1+week', {
    method: 'POST',
    headers: { 'JOB-TOKEN': job.token },
    body: form,
  });
  t.equal(up.status, 201);
  t.same(c.job(5)?.artifacts, [
    {
      filename: 'artifacts.zip',
      size: 7,
      query: { artifact_format: 'zip', artifact_type: 'archive', expire_in: '1 week' },
    },
  ]);
  const down = await api('jobs/5/artifacts', { headers: { 'JOB-TOKEN': job.token } });
  t.equal(down.status, 200);
  t.equal(Buffer.from(await down.arrayBuffer()).toString('latin1'), 'PK\u0003\u0004zip');
  t.equal((await api('jobs/6/artifacts', { headers: { 'JOB-TOKEN': job.token } })).status, 404);
  t.equal((await api('jobs/5/artifacts', { headers: { 'JOB-TOKEN': 'x' } })).status, 403);
});

t.test('jobs/request drops a job needing a feature the runner lacks as runner_unsupported', async (t) => {
  const { c, json } = await start(t);
  const reports = exampleJob(21, {
    artifacts: [{ paths: ['r.xml'], artifact_type: 'junit', artifact_format: 'gzip' }],
  });
  const exclude = exampleJob(22, { artifacts: [{ paths: ['dist/'], exclude: ['dist/tmp/**'] }] });
  const plain = exampleJob(23, { artifacts: [{ paths: ['dist/'] }] });
  for (const j of [reports, exclude, plain]) c.enqueue(j);
  const got = await json('POST', 'jobs/request', { token: TOKEN, info: { features: { artifacts: true } } });
  t.equal(((await got.json()) as { id: number }).id, 23, 'the first job this runner can run');
  t.match(
    c.job(21),
    { state: 'failed', failure_reason: 'runner_unsupported' },
    'reports need upload_multiple_artifacts',
  );
  t.match(
    c.job(22),
    { state: 'failed', failure_reason: 'runner_unsupported' },
    'exclude needs artifacts_exclude',
  );
  c.enqueue(exampleJob(24, { artifacts: [{ paths: ['r.xml'], artifact_type: 'junit', exclude: ['x'] }] }));
  const features = { artifacts: true, upload_multiple_artifacts: true, artifacts_exclude: true };
  const ok = await json('POST', 'jobs/request', { token: TOKEN, info: { features } });
  t.equal(ok.status, 201, 'a runner with the features gets it');
});

t.test(
  'artifacts: 413 over the limit, token checks, 302 to object storage, dotenv for dependents',
  async (t) => {
    const { c, api, json } = await start(t, { maxArtifactBytes: 1000, objectStorage: true });
    c.enqueue(exampleJob(31, { name: 'build' }));
    const build = (await (await json('POST', 'jobs/request', { token: TOKEN })).json()) as ReturnType<
      typeof exampleJob
    >;
    const post = (query: string, data: Buffer, token = build.token, name = 'artifacts.zip') => {
      const form = new FormData();
      form.append('file', new Blob([new Uint8Array(data)]), name);
      return api(`jobs/31/artifacts?${query}`, {
        method: 'POST',
        headers: { 'JOB-TOKEN': token },
        body: form,
      });
    };
    t.equal(
      (await post('artifact_type=archive', Buffer.alloc(10), 'glcbt-wrong')).status,
      403,
      'wrong job token',
    );
    t.equal((await post('artifact_type=archive', Buffer.alloc(5000))).status, 413, 'over max_artifacts_size');
    t.equal((await post('artifact_type=archive&artifact_format=zip', Buffer.from('PKzip'))).status, 201);
    const { gzipSync } = await import('node:zlib');
    const dotenv = gzipSync('BUILD_VERSION=1.2.3\nEMPTY=\n');
    t.equal(
      (await post('artifact_type=dotenv&artifact_format=gzip', dotenv, build.token, 'dotenv.gz')).status,
      201,
    );
    t.equal((await post('artifact_type=dotenv&artifact_format=gzip', gzipSync('not a line'))).status, 400);
    t.same(c.job(31)?.dotenv, { BUILD_VERSION: '1.2.3', EMPTY: '' });

    c.enqueue(exampleJob(32, { name: 'test', dependencies: [{ id: 31, name: 'build' }] }));
    const test = (await (await json('POST', 'jobs/request', { token: TOKEN })).json()) as ReturnType<
      typeof exampleJob
    >;
    t.same(test.dependencies, [
      { id: 31, name: 'build', token: test.token, artifacts_file: { filename: 'artifacts.zip', size: 5 } },
    ]);
    t.ok(
      test.variables.some((v) => v.key === 'BUILD_VERSION' && v.value === '1.2.3'),
      'dotenv reaches the dependent',
    );

    t.equal((await api('jobs/31/artifacts', { headers: { 'JOB-TOKEN': 'glcbt-nobody' } })).status, 403);
    const redirect = await api('jobs/31/artifacts?direct_download=true', {
      headers: { 'JOB-TOKEN': test.token },
      redirect: 'manual',
    });
    t.equal(redirect.status, 302);
    const location = redirect.headers.get('location') ?? '';
    t.not(new URL(location).origin, new URL(c.url).origin, 'a second server');
    const fromStorage = await fetch(location);
    t.equal(Buffer.from(await fromStorage.arrayBuffer()).toString(), 'PKzip');
    t.equal(
      (await fetch(location.replace(/X-Signature=\w+/, 'X-Signature=bad'))).status,
      403,
      'unsigned is refused',
    );
    t.equal(c.objectStorageRequests().length, 2);
    const direct = await api('jobs/31/artifacts', { headers: { 'JOB-TOKEN': test.token } });
    t.equal(await direct.text(), 'PKzip', 'without direct_download the coordinator serves it');
  },
);

t.test('unknown routes are 404 JSON; waitFor resolves and times out', async (t) => {
  const { c, api } = await start(t);
  const r = await api('projects');
  t.equal(r.status, 404);
  t.match(r.headers.get('content-type'), /^application\/json/);
  c.enqueue(exampleJob(1));
  const waiting = c.waitFor(1, (j) => j.state === 'canceled', 2000);
  c.cancel(1, 'graceful');
  t.equal((await waiting).state, 'canceled', 'a pending job is canceled at once');
  await t.rejects(
    c.waitFor(1, (j) => j.state === 'success', 20),
    { code: 'GITLAB' },
  );
});
