/**
 * JobTrace + GitlabClient against the strict fake (§3, §4): the PATCH stream, keep-alive cadence,
 * the final update and every reply that changes what the runner must do next.
 */
import t, { type Test } from 'tap';
import { GitlabClient } from '../../../../src/runtime/gitlab/client.js';
import type { JobPayload } from '../../../../src/runtime/gitlab/job.js';
import { scaledTime } from '../../../../src/util/time.js';
import { JobTrace, type CancelMode } from '../../../../src/runtime/gitlab/trace.js';
import { fullJob, leanJob } from './payloads.js';
import { MIB, startStrictGitlab, type FakeJob, type Reply, type StrictGitlab } from './strict-gitlab.js';

const TOKEN = 'glrt-ConformanceToken_0123456789';
/** Protocol time ×100 faster: the 3 s interval is 30 ms, the 30 s keep-alive 300 ms. */
const SCALE = 0.01;

async function running(t: Test, payload: FakeJob['payload']) {
  const server = await startStrictGitlab({ runnerToken: TOKEN });
  t.teardown(() => server.close());
  const client = new GitlabClient({
    url: server.url,
    token: TOKEN,
    systemId: 'r_AbC123xyz789',
    version: '0.1.0',
  });
  server.enqueue(payload);
  const job = (await client.requestJob()) as JobPayload;
  const cancels: CancelMode[] = [];
  const trace = new JobTrace({
    client,
    job,
    time: scaledTime(SCALE),
    finalBackoff: { minMs: 1, maxMs: 5 },
    onCancel: (mode) => cancels.push(mode),
    timestamps: false,
  });
  t.teardown(() => trace.stop());
  return { server, client, job, trace, cancels };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Polls a condition on the runner's side (the server's events fire before the client reads the reply). */
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}
const puts = (s: StrictGitlab, id: number, kind: string) => s.job(id).puts.filter((r) => r.kind === kind);

t.test(
  'a long log: contiguous ranges of at most 1 MiB, final checksum of exactly what was stored',
  async (t) => {
    const { server, trace } = await running(t, fullJob(1));
    t.equal(await trace.start(), 'run');
    for (let i = 0; i < 5; i++) {
      trace.write(Buffer.alloc(600 * 1024, 0x30 + i));
      await sleep(20);
    }
    t.same(await trace.finish({ state: 'success' }), { kind: 'ok', attempts: 1 });
    const job = server.job(1);
    t.equal(job.trace.length, trace.log.length);
    t.ok(job.patches.length >= 3, `${job.patches.length} patches`);
    t.ok(
      job.patches.some((p) => p.body.length === MIB),
      'a full 1 MiB patch when a lot is pending',
    );
    t.equal(job.state, 'success');
    t.same(server.violations, []);
  },
);

t.test('keep-alive PUTs only after 30 s in which nothing was sent (§3 step 2)', async (t) => {
  const busy = await running(t, fullJob(2));
  const idle = await running(t, fullJob(3));
  await Promise.all([busy.trace.start(), idle.trace.start()]);
  const end = Date.now() + 1500; // 150 s of protocol time
  while (Date.now() < end) {
    busy.trace.write('still working\n');
    await sleep(8);
  }
  await Promise.all([busy.trace.finish({ state: 'success' }), idle.trace.finish({ state: 'success' })]);
  t.equal(puts(busy.server, 2, 'keep-alive').length, 0, 'a job whose log keeps flowing needs no keep-alive');
  const alive = puts(idle.server, 3, 'keep-alive');
  t.ok(alive.length >= 3 && alive.length <= 5, `${alive.length} keep-alives in 150 s without output`);
  for (let i = 1; i < alive.length; i++) {
    const gap = alive[i]!.at - alive[i - 1]!.at;
    t.ok(gap >= 270, `keep-alives ${gap / 1000 / SCALE} s apart`);
  }
  t.same([...busy.server.violations, ...idle.server.violations], []);
});

t.test('final PUT 202: wait the interval it names, resend the same PUT', async (t) => {
  const { server, trace } = await running(t, fullJob(4));
  await trace.start();
  trace.write('done\n');
  const finalPut = (r: { kind?: string }) => r.kind === 'final';
  server.override({
    route: 'update',
    when: finalPut,
    times: 2,
    reply: {
      status: 202,
      text: '202',
      headers: { 'Job-Status': 'running', 'X-GitLab-Trace-Update-Interval': '5' },
    },
  });
  t.same(await trace.finish({ state: 'failed', failureReason: 'script_failure', exitCode: 2 }), {
    kind: 'ok',
    attempts: 1,
  });
  const finals = puts(server, 4, 'final');
  t.equal(finals.length, 3);
  t.same(new Set(finals.map((r) => JSON.stringify(r.json))).size, 1, 'the same body each time');
  t.ok(finals[2]!.at - finals[1]!.at >= 45, 'waited ~5 s of protocol time');
  t.match(finals[0]!.json, { state: 'failed', failure_reason: 'script_failure', exit_code: 2 });
  t.same(server.violations, []);
});

t.test('final PUT 404: the job is gone; nothing follows', async (t) => {
  const { server, trace } = await running(t, fullJob(14));
  await trace.start();
  trace.write('bye\n');
  server.override({
    route: 'update',
    when: (r) => r.kind === 'final',
    reply: { status: 404, json: { message: '404 Not Found' } },
  });
  t.same(await trace.finish({ state: 'success' }), { kind: 'aborted', attempts: 1 });
  await sleep(100);
  t.equal(server.requests.at(-1)?.kind, 'final');
  t.same(server.violations, []);
});

t.test('final PUT 412: the whole trace again from 0, then the PUT again', async (t) => {
  const { server, trace } = await running(t, fullJob(5));
  await trace.start();
  trace.write('line one\nline two\n');
  server.override({
    route: 'update',
    when: (r) => r.kind === 'final',
    reply: (_r, job) => {
      job!.trace = Buffer.alloc(0);
      return { status: 412, text: '412', headers: { 'Job-Status': 'running' } };
    },
  });
  t.equal((await trace.finish({ state: 'success' })).kind, 'ok');
  const job = server.job(5);
  t.equal(job.trace.toString(), trace.log.text());
  t.equal(job.patches.at(-1)?.headers['content-range'], `0-${trace.log.length - 1}`);
  t.equal(job.state, 'success');
  t.same(server.violations, []);
});

t.test('416 mid-job: continue from the length in Range', async (t) => {
  const { server, trace } = await running(t, fullJob(6));
  await trace.start();
  trace.write('0123456789\n');
  await server.waitFor(() => server.job(6).trace.length === 11, 'first patch');
  server.override({
    route: 'trace',
    reply: (_r, job) => {
      job!.trace = job!.trace.subarray(0, 4);
      return { status: 416, text: '416', headers: { Range: '0-4', 'Job-Status': 'running' } };
    },
  });
  trace.write('more\n');
  await server.waitFor(() => server.job(6).patches.length >= 3, 'the resend');
  t.equal((await trace.finish({ state: 'success' })).kind, 'ok');
  t.equal(server.job(6).patches[2]?.headers['content-range'], `4-${trace.log.length - 1}`);
  t.same(server.violations, []);
});

const abortReplies: [string, Reply][] = [
  ['plain 403', { status: 403, json: { message: '403 Forbidden' } }],
  ['403 + Job-Status: canceled', { status: 403, json: {}, headers: { 'Job-Status': 'canceled' } }],
  ['202 + Job-Status: failed', { status: 202, headers: { 'Job-Status': 'failed', Range: '0-0' } }],
];
for (const [how, reply] of abortReplies) {
  t.test(`abort on PATCH (${how}): no more PATCH or keep-alive, one final PUT, then nothing`, async (t) => {
    const { server, trace, cancels } = await running(t, fullJob(7));
    await trace.start();
    // The job has ended on GitLab's side: later calls meet Rails' 403 + Job-Status.
    server.override({ route: 'trace', reply: (_r, job) => ((job!.state = 'canceled'), reply) });
    trace.write('output\n');
    await until(() => cancels.length > 0, 'the abort');
    t.same(cancels, ['abort']);
    trace.write('output after the abort\n');
    await sleep(100);
    t.equal((await trace.finish({ state: 'failed', failureReason: 'job_canceled' })).kind, 'aborted');
    await sleep(50);
    t.equal(server.job(7).patches.length, 1);
    t.equal(puts(server, 7, 'final').length, 1);
    t.same(server.violations, []);
  });
}

t.test('a hard cancel seen on the keep-alive PUT: at most one PATCH and the final PUT', async (t) => {
  const { server, trace, cancels } = await running(t, fullJob(8));
  await trace.start();
  server.cancel(8, 'hard');
  await until(() => cancels.length > 0, 'the abort');
  t.same(cancels, ['abort']);
  trace.write('late output\n');
  t.equal((await trace.finish({ state: 'failed', failureReason: 'job_canceled' })).kind, 'aborted');
  t.same(server.violations, []);
});

t.test('Job-Status: canceling on PATCH and on the keep-alive PUT asks for a graceful cancel', async (t) => {
  const viaPatch = await running(t, fullJob(9));
  await viaPatch.trace.start();
  viaPatch.server.cancel(9, 'graceful');
  viaPatch.trace.write('x\n');
  await until(() => viaPatch.cancels.length > 0, 'cancel via PATCH');
  t.equal(viaPatch.server.job(9).patches.at(-1)?.replyHeaders?.['Job-Status'], 'canceling');
  const viaPut = await running(t, fullJob(10));
  await viaPut.trace.start();
  viaPut.server.cancel(10, 'graceful');
  await until(() => viaPut.cancels.length > 0, 'cancel via keep-alive');
  t.same([viaPatch.cancels, viaPut.cancels], [['graceful'], ['graceful']]);
  for (const { trace, server } of [viaPatch, viaPut]) {
    t.equal((await trace.finish({ state: 'failed', failureReason: 'unknown_failure' })).kind, 'ok');
    t.same(server.violations, []);
  }
  t.equal(viaPut.server.job(10).state, 'canceled');
});

t.test('the start PUT: abort drops the job silently, canceling cancels it', async (t) => {
  const dropped = await running(t, fullJob(11));
  dropped.server.override({
    route: 'update',
    reply: { status: 403, json: {}, headers: { 'Job-Status': 'canceled' } },
  });
  t.equal(await dropped.trace.start(), 'drop');
  await dropped.trace.stop();
  const gone = await running(t, fullJob(12));
  gone.server.override({ route: 'update', reply: { status: 404, json: { message: '404 Not Found' } } });
  t.equal(await gone.trace.start(), 'drop');
  await gone.trace.stop();
  const canceled = await running(t, fullJob(13));
  canceled.server.cancel(13, 'graceful');
  t.equal(await canceled.trace.start(), 'cancel');
  t.equal((await canceled.trace.finish({ state: 'failed', failureReason: 'unknown_failure' })).kind, 'ok');
  await sleep(50);
  t.equal(dropped.server.requests.length, 2, 'request + start PUT, nothing else');
  t.equal(gone.server.requests.length, 2);
  t.same([...dropped.server.violations, ...gone.server.violations, ...canceled.server.violations], []);
});

t.test('failure reasons follow features.failure_reasons; exit_code 0 is omitted', async (t) => {
  const cases: [FakeJob['payload'], string, number | undefined, string, number | undefined][] = [
    [leanJob(21), 'image_pull_failure', 0, 'runner_system_failure', undefined],
    [leanJob(22), 'runner_configuration_error', 1, 'script_failure', 1],
    [fullJob(23), 'runner_interrupted', undefined, 'unknown_failure', undefined],
    [fullJob(24), 'api_failure', 255, 'api_failure', 255],
    [fullJob(25), 'job_execution_timeout', undefined, 'job_execution_timeout', undefined],
  ];
  for (const [payload, reason, exitCode, sent, sentExit] of cases) {
    const { server, trace } = await running(t, payload);
    await trace.start();
    trace.write('x');
    await trace.finish({ state: 'failed', failureReason: reason, exitCode });
    const body = puts(server, payload.id, 'final')[0]?.json;
    t.equal(body?.['failure_reason'], sent, reason);
    t.equal(body?.['exit_code'], sentExit);
    t.same(server.violations, []);
  }
});

t.test('CI_DEBUG_TRACE=true: PATCH with debug_trace=true (§5 Bash wrapper)', async (t) => {
  const { server, trace } = await running(
    t,
    fullJob(30, { variables: [{ key: 'CI_DEBUG_TRACE', value: 'true' }] }),
  );
  await trace.start();
  trace.write('+ echo xtrace\n');
  await trace.finish({ state: 'success' });
  t.equal(server.job(30).patches[0]?.query.get('debug_trace'), 'true');
  t.same(server.violations, []);
});
