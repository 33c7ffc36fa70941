/**
 * GitlabClient against the strict fake: every request it makes is checked by the server (headers,
 * tokens, info, last_update), and every reply the spec lists for verify and jobs/request is met.
 */
import t, { type Test } from 'tap';
import { GitlabClient, type JobRef } from '../../../../src/runtime/gitlab/client.js';
import { manualTime, systemTime, type Time } from '../../../../src/util/time.js';
import { fullJob, leanJob } from './payloads.js';
import { startStrictGitlab, type StrictGitlabOptions } from './strict-gitlab.js';

const TOKEN = 'glrt-ConformanceToken_0123456789';

async function setup(t: Test, opts: Partial<StrictGitlabOptions> = {}, clientOpts: { time?: Time } = {}) {
  const server = await startStrictGitlab({ runnerToken: TOKEN, ...opts });
  t.teardown(() => server.close());
  const sleeps: number[] = [];
  const client = new GitlabClient({
    url: server.url + '/',
    token: TOKEN,
    systemId: 's_0123456789ab',
    version: '0.1.0',
    random: () => 0.5,
    time: { ...(clientOpts.time ?? systemTime), sleep: async (ms: number) => void sleeps.push(ms) },
  });
  return { server, client, sleeps };
}

t.test("verify: JSON reply, and an old server's bare 200 without a body", async (t) => {
  const { server, client } = await setup(t);
  t.same(await client.verify(), { id: 1, tokenExpiresAt: null });
  const old = await setup(t, { verifyStyle: 'bare' });
  t.same(await old.client.verify(), {}, 'a bare 200 is a valid token, not an error');
  const rejected = await setup(t);
  rejected.server.override({ route: 'verify', reply: { status: 403, json: { message: '403 Forbidden' } } });
  await t.rejects(rejected.client.verify(), { code: 'GITLAB_AUTH' });
  rejected.server.override({ route: 'verify', reply: { status: 422, json: { message: 'orphaned' } } });
  await t.rejects(rejected.client.verify(), { code: 'GITLAB_AUTH' });
  t.same([...server.violations, ...old.server.violations, ...rejected.server.violations], []);
});

t.test('jobs/request through Workhorse: last_update absent, then echoed across 204s and 201s', async (t) => {
  const { server, client } = await setup(t, { longPollMs: 20 });
  t.equal(await client.requestJob(), undefined, 'Rails 204 with X-GitLab-Last-Update');
  const seen = client.lastUpdate;
  t.ok(seen);
  t.equal(await client.requestJob(), undefined, 'Workhorse 204 after its long poll');
  const workhorse = server.requests.at(-1);
  t.equal(workhorse?.replyHeaders?.['Gitlab-Ci-Builds-Polling'], 'yes');
  t.equal(workhorse?.replyHeaders?.['X-GitLab-Last-Update'], undefined);
  t.equal(client.lastUpdate, seen, 'a 204 without the header keeps the saved value');

  // A job queued while Workhorse holds the request: Workhorse still answers a bare 204.
  server.events.once('held', () => server.enqueue(fullJob(11)));
  const held = client.requestJob();
  t.equal(await held, undefined);
  const job = await client.requestJob();
  t.equal(job?.id, 11, 'the stale last_update goes to Rails, which assigns the job');
  t.equal(await client.requestJob(), undefined, 'Rails 204 with the new queue version');
  t.not(client.lastUpdate, seen);
  t.same(
    server.requests.map((r) => r.status),
    [204, 204, 204, 201, 204],
  );
  t.equal(client.consecutiveUnhealthy, 0);
  t.same(server.violations, []);
});

t.test('jobs/request straight to Rails: a current last_update is echoed in a 204', async (t) => {
  const { server, client } = await setup(t, { workhorse: false });
  await client.requestJob();
  const seen = client.lastUpdate;
  await client.requestJob();
  t.equal(server.requests[1]?.replyHeaders?.['X-GitLab-Last-Update'], seen);
  t.equal(client.lastUpdate, seen);
  t.same(server.violations, []);
});

t.test(
  '429: RateLimit-ResetTime (RFC 1123) first, else Retry-After; then the retry goes through',
  async (t) => {
    const time = manualTime('2026-03-01T10:00:00Z');
    const { server, client, sleeps } = await setup(t, {}, { time });
    server.enqueue(fullJob(1));
    server.override({
      route: 'request',
      reply: {
        status: 429,
        json: { message: 'rate limited' },
        headers: { 'RateLimit-ResetTime': 'Sun, 01 Mar 2026 10:00:12 GMT', 'Retry-After': '60' },
      },
    });
    server.override({
      route: 'request',
      reply: { status: 429, text: 'Retry later', headers: { 'Retry-After': '60' } },
    });
    t.equal((await client.requestJob())?.id, 1);
    t.same(sleeps, [12_000, 60_000]);
    t.same(server.violations, []);
  },
);

t.test('409, 422, 503 and 429-after-retries are healthy "poll again"; 403 is a token error', async (t) => {
  const { server, client, sleeps } = await setup(t);
  for (const status of [409, 422]) {
    server.override({ route: 'request', reply: { status, json: { message: String(status) } } });
    t.equal(await client.requestJob(), undefined, String(status));
    t.equal(server.requests.length, status === 409 ? 1 : 2, `${status} is not retried`);
  }
  server.override({ route: 'request', reply: { status: 503, text: '' }, times: 5 });
  t.equal(await client.requestJob(), undefined, '503 five times');
  server.override({
    route: 'request',
    reply: { status: 429, json: {}, headers: { 'Retry-After': '1' } },
    times: 5,
  });
  t.equal(await client.requestJob(), undefined, '429 five times');
  t.equal(server.requests.length, 12, 'at most 5 attempts each');
  t.equal(sleeps.length, 8);
  t.equal(client.consecutiveUnhealthy, 0);
  server.override({ route: 'request', reply: { status: 403, json: { message: '403 Forbidden' } } });
  await t.rejects(client.requestJob(), { code: 'GITLAB_AUTH' });
  t.equal(client.consecutiveUnhealthy, 1);
  t.same(server.violations, []);
});

t.test('a lean payload (optional keys missing, unknown keys) is taken as a job', async (t) => {
  const { server, client } = await setup(t);
  server.enqueue(leanJob(21));
  const job = await client.requestJob();
  t.equal(job?.id, 21);
  t.equal(job?.features, undefined);
  t.same(server.violations, []);
});

t.test(
  'PUT replies (§3): 200, 202 + interval, 412, 404, 403 with and without Job-Status, canceling',
  async (t) => {
    const { server, client } = await setup(t);
    server.enqueue(fullJob(31));
    const job = (await client.requestJob()) as JobRef;
    t.match(await client.updateJob(job, { state: 'running' }), { kind: 'ok', status: 200, intervalMs: 3000 });
    const output = { checksum: 'crc32:00000000', bytesize: 0 };
    const cases: [Record<string, string>, number, string][] = [
      [{ 'Job-Status': 'canceling' }, 200, 'canceling'],
      [{ 'Job-Status': 'running', 'X-GitLab-Trace-Update-Interval': '10' }, 202, 'accepted-retry'],
      [{}, 412, 'reset-trace'],
      [{}, 404, 'not-found'],
      [{}, 403, 'abort'],
      [{ 'Job-Status': 'canceled' }, 403, 'abort'],
      [{ 'Job-Status': 'failed' }, 200, 'abort'],
      [{ 'Job-Status': 'running' }, 400, 'retry'],
      [{ 'Job-Status': 'running' }, 409, 'retry'],
    ];
    for (const [headers, status, kind] of cases) {
      server.override({ route: 'update', reply: { status, headers, text: String(status) } });
      const r = await client.updateJob(job, { state: 'running', output });
      t.equal(r.kind, kind, `${status} ${JSON.stringify(headers)}`);
      server.forgive(31);
    }
    t.equal((await client.updateJob(job, { state: 'running', output })).intervalMs, 3000);
    t.same(server.violations, []);
  },
);

t.test(
  'PATCH replies (§4): 202 + Range, 416 + Range, 404, 403 with and without Job-Status, canceling',
  async (t) => {
    const { server, client } = await setup(t);
    server.enqueue(fullJob(41));
    const job = (await client.requestJob()) as JobRef;
    await client.updateJob(job, { state: 'running' });
    const bytes = Buffer.from('hello\n');
    t.match(await client.patchTrace(job, bytes, 0), { kind: 'accepted', end: 6, intervalMs: 3000 });
    t.match(await client.patchTrace(job, bytes, 0), { kind: 'range-mismatch', serverLength: 6 });
    server.override({
      route: 'trace',
      reply: { status: 202, headers: { 'Job-Status': 'canceling', Range: '0-12' } },
    });
    t.match(await client.patchTrace(job, bytes, 6), { kind: 'canceling', end: 12, cancelRequested: true });
    const cases: [Record<string, string>, number, string][] = [
      [{}, 404, 'not-found'],
      [{}, 403, 'abort'],
      [{ 'Job-Status': 'canceled' }, 403, 'abort'],
      [{ 'Job-Status': 'failed' }, 202, 'abort'],
      [{}, 500, 'retry'],
    ];
    for (const [headers, status, kind] of cases) {
      server.override({ route: 'trace', reply: { status, headers }, times: status === 500 ? 5 : 1 });
      t.equal((await client.patchTrace(job, bytes, 12)).kind, kind, `${status} ${JSON.stringify(headers)}`);
      server.forgive(41);
    }
    const big = Buffer.alloc(1024 * 1024, 0x61);
    t.match(await client.patchTrace(job, big, 6), { kind: 'accepted', end: 6 + big.length });
    await t.rejects(client.patchTrace(job, Buffer.alloc(0), 6), /empty/);
    t.same(server.violations, []);
  },
);
