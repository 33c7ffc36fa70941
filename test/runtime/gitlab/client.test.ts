import t from 'tap';
import { isFleetError } from '../../../src/errors.js';
import { GitlabClient } from '../../../src/runtime/gitlab/client.js';
import { apiBaseUrl, isRetriedStatus } from '../../../src/runtime/gitlab/transport.js';
import { exampleJob } from '../../../src/devtools/coordinator/example-job.js';
import { manualTime } from '../../../src/util/time.js';
import { RUNNER_TOKEN, recordingLog, setup } from './helpers.js';

t.test('base URL: trailing / and /ci stripped, /api/v4/ appended, http(s) only', async (t) => {
  t.equal(apiBaseUrl('https://gitlab.example.com'), 'https://gitlab.example.com/api/v4/');
  t.equal(apiBaseUrl('https://gitlab.example.com/'), 'https://gitlab.example.com/api/v4/');
  t.equal(apiBaseUrl('https://gitlab.example.com/ci'), 'https://gitlab.example.com/api/v4/');
  t.equal(apiBaseUrl('https://gitlab.example.com/ci/'), 'https://gitlab.example.com/api/v4/');
  t.equal(apiBaseUrl('http://host:8080/gitlab/'), 'http://host:8080/gitlab/api/v4/');
  t.throws(() => apiBaseUrl('ftp://host'), { code: 'CONFIG_INVALID' });
  t.throws(() => apiBaseUrl('not a url'), { code: 'CONFIG_INVALID' });
});

t.test('retried statuses', async (t) => {
  for (const s of [408, 429, 500, 502, 503, 504, 512, 599]) t.ok(isRetriedStatus(s), String(s));
  for (const s of [200, 201, 204, 400, 403, 404, 409, 412, 416, 501, 505, 511])
    t.notOk(isRetriedStatus(s), String(s));
});

t.test('verify: 200 with id, headers, info and system_id; 403 is a token error', async (t) => {
  const { coordinator } = await setup(t);
  const good = new GitlabClient({
    url: coordinator.url + '/ci/',
    token: RUNNER_TOKEN,
    systemId: 's_0123456789ab',
    version: '0.1.0',
  });
  t.same(await good.verify(), { id: 1, tokenExpiresAt: null });

  const req = coordinator.requests().at(-1);
  t.equal(req?.url, '/api/v4/runners/verify');
  t.match(req?.headers['user-agent'], /^gitlab-runner 0\.1\.0 \(runfleet; node[\d.]+; \w+\/\w+\)$/);
  t.match(req?.headers['x-request-id'], /^[0-9a-f]{32}$/);
  t.equal(req?.headers['runner-token'], RUNNER_TOKEN);
  t.equal(req?.headers['content-type'], 'application/json');
  t.equal(req?.headers['accept'], 'application/json');
  t.equal(req?.json?.['system_id'], 's_0123456789ab');
  const info = coordinator.runners()[0]?.info as {
    features: Record<string, boolean>;
    version: string;
    shell: string;
  };
  t.equal(info.version, '0.1.0');
  t.equal(info.shell, 'bash');
  t.match(info.features, { cancelable: true, cancel_gracefully: true, trace_checksum: true, masking: true });
  t.equal(info.features['artifacts'], true, 'claims artifacts (§6)');
  t.equal(info.features['cache'], true, 'claims cache (runtime/cache)');

  const log = recordingLog();
  const bad = new GitlabClient({
    url: coordinator.url,
    token: 'glrt-WrongToken999',
    systemId: 's_0123456789ab',
    version: '0.1.0',
    log,
  });
  const err = await bad.verify().catch((e: unknown) => e);
  t.ok(isFleetError(err));
  t.match(err, { code: 'GITLAB_AUTH', retryable: false });
  t.notMatch(String((err as Error).message) + (err as { hint: string }).hint, 'WrongToken999');
});

t.test('requestJob: 204 then 201, last_update tracked and echoed', async (t) => {
  const { coordinator, client } = await setup(t);
  t.equal(await client.requestJob(), undefined);
  const first = coordinator.requests().at(-1);
  t.equal(first?.status, 204);
  t.notOk(first?.json && 'last_update' in first.json, 'no last_update before the server sent one');
  t.ok(client.lastUpdate, 'X-GitLab-Last-Update saved');
  const seen = client.lastUpdate;

  t.equal(await client.requestJob(), undefined);
  t.equal(coordinator.requests().at(-1)?.json?.['last_update'], seen, 'sent back as last_update');

  coordinator.enqueue(exampleJob(42, { name: 'unit' }));
  const job = await client.requestJob();
  t.equal(job?.id, 42);
  t.equal(job?.job_info.name, 'unit');
  t.equal(coordinator.requests().at(-1)?.status, 201);
  t.not(client.lastUpdate, seen, 'new queue version after enqueue');
  t.equal(coordinator.job(42)?.state, 'running');
  t.equal(client.consecutiveUnhealthy, 0);
});

t.test('429 with Retry-After is honoured, then the request goes through', async (t) => {
  const { coordinator, client, sleeps } = await setup(t);
  coordinator.enqueue(exampleJob(1));
  coordinator.inject({ kind: 'status', route: 'request', status: 429, retryAfterSeconds: 7 });
  const job = await client.requestJob();
  t.equal(job?.id, 1);
  t.same(sleeps, [7000]);
  t.same(
    coordinator.requests().map((r) => r.status),
    [429, 201],
  );
});

t.test('RateLimit-ResetTime wins over Retry-After', async (t) => {
  const time = manualTime('2026-01-01T00:00:00Z');
  const { coordinator, client, sleeps } = await setup(t, {}, { time });
  coordinator.inject({
    kind: 'status',
    route: 'request',
    status: 429,
    retryAfterSeconds: 60,
    rateLimitResetTime: new Date('2026-01-01T00:00:05Z'),
  });
  await client.requestJob();
  t.same(sleeps, [5000]);
});

t.test('503 is retried with growing jittered backoff, at most 5 attempts', async (t) => {
  const { coordinator, client, sleeps } = await setup(t);
  coordinator.inject({ kind: 'status', route: 'request', status: 503, count: 2 });
  coordinator.enqueue(exampleJob(5));
  t.equal((await client.requestJob())?.id, 5);
  // random() = 0.5: half the step plus a quarter, for steps of 100 ms and 200 ms.
  t.same(sleeps, [75, 150]);

  coordinator.inject({ kind: 'status', route: 'request', status: 503, count: 10 });
  const before = coordinator.requests().length;
  t.equal(await client.requestJob(), undefined, '503 after all attempts: poll again later');
  t.equal(coordinator.requests().length - before, 5);
  t.equal(client.consecutiveUnhealthy, 0, '503 counts as healthy');
});

t.test(
  'requestJob tells whether GitLab pushed back (429/5xx) on the way, for adaptive concurrency',
  async (t) => {
    const { coordinator, client } = await setup(t);
    const pushback = { retried: true };
    coordinator.enqueue(exampleJob(6));
    t.equal((await client.requestJob(undefined, pushback))?.id, 6);
    t.equal(pushback.retried, false, 'a clean 201');
    coordinator.inject({ kind: 'status', route: 'request', status: 429, retryAfterSeconds: 0 });
    coordinator.enqueue(exampleJob(7));
    t.equal((await client.requestJob(undefined, pushback))?.id, 7);
    t.equal(pushback.retried, true, 'the job came after a 429 was retried');
    t.equal(await client.requestJob(undefined, pushback), undefined);
    t.equal(pushback.retried, false, 'a clean 204');
    coordinator.inject({ kind: 'status', route: 'request', status: 503, count: 10 });
    t.equal(await client.requestJob(undefined, pushback), undefined);
    t.equal(pushback.retried, true, '503 after all attempts');
  },
);

t.test('409 and 422 are healthy "no job" replies', async (t) => {
  const { coordinator, client } = await setup(t);
  coordinator.inject({ kind: 'status', route: 'request', status: 409 });
  t.equal(await client.requestJob(), undefined);
  coordinator.inject({ kind: 'status', route: 'request', status: 422 });
  t.equal(await client.requestJob(), undefined);
  t.equal(client.consecutiveUnhealthy, 0);
});

t.test('403 on jobs/request is fatal and unhealthy; network errors are unhealthy', async (t) => {
  const { coordinator } = await setup(t);
  const log = recordingLog();
  const bad = new GitlabClient({
    url: coordinator.url,
    token: 'glrt-RevokedSecret42',
    systemId: 's_0123456789ab',
    version: '0.1.0',
    log,
  });
  const err = await bad.requestJob().catch((e: unknown) => e);
  t.match(err, { code: 'GITLAB_AUTH' });
  t.equal(bad.consecutiveUnhealthy, 1);
  t.notMatch((err as Error).message, 'RevokedSecret42');

  const url = coordinator.url;
  await coordinator.close();
  const gone = new GitlabClient({
    url,
    token: 'glrt-RevokedSecret42',
    systemId: 's_0123456789ab',
    version: '0.1.0',
    log,
  });
  t.equal(await gone.requestJob(), undefined);
  t.equal(await gone.requestJob(), undefined);
  t.equal(gone.consecutiveUnhealthy, 2);
  t.ok(log.lines.length > 0);
  for (const line of log.lines) t.notMatch(line, 'RevokedSecret42', 'token not in logs');
});

t.test('long polling: a held request returns the job as soon as it is queued', async (t) => {
  const { coordinator, client } = await setup(t, { longPollMs: 5000 });
  t.equal(await client.requestJob(), undefined, 'first poll has no last_update: answered at once');
  const answeredBefore = coordinator.requests().length;
  let answered = false;
  const pending = client.requestJob().finally(() => (answered = true));
  // Queue the job a moment later; what is checked is the order of events, not how long anything
  // took (a loaded machine may take seconds to deliver either).
  await new Promise<void>((queued) =>
    setTimeout(() => {
      t.notOk(answered, 'no answer while the queue is empty');
      t.equal(coordinator.requests().length, answeredBefore, 'the coordinator holds the request');
      coordinator.enqueue(exampleJob(9));
      queued();
    }, 100),
  );
  t.equal((await pending)?.id, 9, 'answered with the job queued while it was held');
});

t.test('requestJob honours the caller abort signal', async (t) => {
  const { client } = await setup(t, { longPollMs: 5000 });
  await client.requestJob();
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error('shutdown')), 50);
  await t.rejects(client.requestJob(ac.signal), { message: 'shutdown' });
});

t.test('updateJob and patchTrace results', async (t) => {
  const { coordinator, client } = await setup(t, { traceUpdateIntervalSeconds: 7 });
  coordinator.enqueue(exampleJob(3));
  const job = await client.requestJob();
  if (!job) throw new Error('no job');

  const running = await client.updateJob(job, { state: 'running' });
  t.match(running, {
    kind: 'ok',
    status: 200,
    remoteState: 'running',
    intervalMs: 7000,
    cancelRequested: false,
  });
  const put = coordinator.requests().at(-1);
  t.equal(put?.headers['job-token'], job.token);
  t.equal(put?.json?.['token'], job.token);
  t.notOk(put?.json && 'exit_code' in put.json, 'exit_code omitted when zero');

  const hello = Buffer.from('hello\n');
  t.match(await client.patchTrace(job, hello, 0), { kind: 'accepted', end: 6 });
  const patch = coordinator.requests().at(-1);
  t.equal(patch?.url, '/api/v4/jobs/3/trace?debug_trace=false');
  t.equal(patch?.headers['content-range'], '0-5');
  t.equal(patch?.headers['content-type'], 'text/plain');
  t.match(await client.patchTrace(job, hello, 2), { kind: 'range-mismatch', serverLength: 6 });

  coordinator.cancel(3, 'graceful');
  t.match(await client.patchTrace(job, hello, 6), { kind: 'canceling', end: 12, cancelRequested: true });
  t.match(await client.updateJob(job, { state: 'running' }), { kind: 'canceling' });
  coordinator.cancel(3, 'hard');
  t.match(await client.patchTrace(job, hello, 12), { kind: 'abort', status: 403, remoteState: 'canceled' });
  t.match(await client.updateJob(job, { state: 'failed' }), { kind: 'abort' });

  t.match(await client.updateJob({ id: 999, token: job.token }, { state: 'running' }), { kind: 'not-found' });
  t.match(await client.patchTrace({ id: 999, token: job.token }, hello, 0), { kind: 'not-found' });
});

t.test('failure reasons are mapped to what the server lists; exit codes are sent', async (t) => {
  const { coordinator, client } = await setup(t);
  const payload = exampleJob(4);
  payload.features = {
    failure_reasons: ['script_failure', 'runner_system_failure', 'job_execution_timeout'],
  };
  coordinator.enqueue(payload);
  const job = await client.requestJob();
  if (!job) throw new Error('no job');
  await client.updateJob(job, { state: 'failed', failureReason: 'image_pull_failure', exitCode: 2 });
  const body = coordinator.requests().at(-1)?.json;
  t.equal(body?.['failure_reason'], 'runner_system_failure');
  t.equal(body?.['exit_code'], 2);
  t.equal(coordinator.job(4)?.failure_reason, 'runner_system_failure');
});

t.test('job tokens never appear in URLs, errors or logs', async (t) => {
  const { coordinator, client, log } = await setup(t);
  coordinator.enqueue(exampleJob(8));
  const job = await client.requestJob();
  if (!job) throw new Error('no job');
  coordinator.inject({ kind: 'status', route: 'trace', status: 500, count: 5 });
  t.match(await client.patchTrace(job, Buffer.from('x'), 0), { kind: 'retry' });
  for (const r of coordinator.requests()) {
    t.notMatch(r.url, job.token);
    t.notMatch(r.url, RUNNER_TOKEN);
  }
  t.equal(client.scrub(`clone ${job.git_info.repo_url} with ${RUNNER_TOKEN}`).includes(job.token), false);
  for (const line of log.lines) {
    t.notMatch(line, job.token);
    t.notMatch(line, RUNNER_TOKEN);
  }
});

t.test('an ended job token stays scrubbed among the recent ones; the kept set is bounded', async (t) => {
  const { coordinator, client } = await setup(t);
  coordinator.enqueue(exampleJob(9));
  const job = await client.requestJob();
  if (!job) throw new Error('no job');
  t.same(client.knownJobTokens, { live: 1, ended: 0 });
  client.jobEnded(job);
  client.jobEnded(job); // a second end changes nothing
  t.same(client.knownJobTokens, { live: 0, ended: 1 });
  t.equal(
    client.scrub(`token ${job.token}`),
    'token [MASKED]',
    'a late error about an ended job is scrubbed',
  );
  // A long-running daemon: thousands of jobs come and go; only a bounded number stay kept.
  for (let i = 0; i < 2_000; i++) {
    const ref = { id: 100_000 + i, token: `glcbt-ended-${i}` };
    await client.updateJob(ref, { state: 'running' }).catch(() => undefined);
    client.jobEnded(ref);
  }
  const kept = client.knownJobTokens;
  t.equal(kept.live, 0);
  t.ok(kept.ended > 0 && kept.ended <= 256, `ended tokens kept: ${kept.ended}`);
  t.equal(client.scrub('glcbt-ended-1999'), '[MASKED]', 'the most recent ended token is still scrubbed');
});
