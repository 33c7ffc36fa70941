import t, { type Test } from 'tap';
import { exampleJob, type ExampleJobOptions } from '../../../src/devtools/coordinator/example-job.js';
import { failRefusedJob } from '../../../src/runtime/gitlab/refuse.js';
import { scaledTime, manualTime } from '../../../src/util/time.js';
import { JobTrace, type CancelMode, type JobTraceOptions } from '../../../src/runtime/gitlab/trace.js';
import { setup } from './helpers.js';

const SECRET = 's3cr3t-Value-123';
/** Protocol time ×1000 faster: the 3 s interval is 3 ms, the 30 s keep-alive 30 ms. */
const FAST = scaledTime(0.001);

async function runningJob(
  t: Test,
  jobOpts: ExampleJobOptions = {},
  traceOpts: Partial<JobTraceOptions> = {},
  coordinatorOpts: Parameters<typeof setup>[1] = {},
) {
  const ctx = await setup(t, coordinatorOpts);
  ctx.coordinator.enqueue(
    exampleJob(1, { variables: { API_KEY: { value: SECRET, masked: true } }, ...jobOpts }),
  );
  const job = await ctx.client.requestJob();
  if (!job) throw new Error('no job');
  const cancels: CancelMode[] = [];
  const trace = new JobTrace({
    client: ctx.client,
    job,
    time: FAST,
    finalBackoff: { minMs: 1, maxMs: 10 },
    onCancel: (mode) => cancels.push(mode),
    // Byte-exact protocol checks; the timestamp prefix has tests of its own (timestamper.test.ts).
    timestamps: false,
    ...traceOpts,
  });
  t.teardown(() => trace.stop());
  return { ...ctx, job, trace, cancels };
}

const until = async (cond: () => boolean, what: string, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
};

t.test('a job log goes out masked, in order, and the checksum is accepted', async (t) => {
  // Section markers read a fixed clock; the send loop runs on the fast timers.
  const clock = manualTime('2026-01-01T00:00:00Z');
  const { coordinator, trace, job } = await runningJob(t, {}, { time: { ...FAST, now: () => clock.now() } });
  t.equal(await trace.start(), 'run');
  t.equal(coordinator.job(1)?.updates[0]?.state, 'running');
  trace.sectionStart('step_script', { collapsed: true });
  trace.heading('Executing "step_script" stage of the job script');
  trace.command('echo $API_KEY');
  trace.write('key: s3cr3t-Va');
  trace.write('lue-123\n');
  trace.write('pat: glpat-abcDEF123 and job token ' + job.token + '\n', 'stderr');
  trace.flush();
  trace.sectionEnd('step_script');
  trace.jobResult({ state: 'success' });
  await until(() => (coordinator.job(1)?.logBytes ?? 0) > 0, 'a PATCH from the send loop');
  const outcome = await trace.finish({ state: 'success' });
  t.same(outcome, { kind: 'ok', attempts: 1 });

  const view = coordinator.job(1);
  t.equal(view?.state, 'success');
  t.equal(view?.checksumOk, true, 'crc32 and bytesize match the stored trace');
  t.equal(view?.log, trace.log.text());
  t.notMatch(view?.log, SECRET);
  t.notMatch(view?.log, job.token);
  t.match(view?.log, 'key: [MASKED]\n');
  // The job token is a masked variable: the masker (step 1) takes it whole, before the prefix rule.
  t.match(view?.log, 'pat: glpat-[MASKED] and job token [MASKED]\n');
  t.match(view?.log, 'section_start:1767225600:step_script[collapsed=true]\r\u001b[0K\u001b[36;1mExecuting');
  t.match(view?.log, '\u001b[32;1m$ echo $API_KEY\u001b[0;m\n');
  t.match(view?.log, 'section_end:1767225600:step_script\r\u001b[0K\u001b[32;1mJob succeeded');
  const final = view?.updates.at(-1);
  t.equal(final?.output?.checksum, trace.log.checksum());
  t.equal(final?.output?.bytesize, trace.log.length);
});

t.test('patches are contiguous Content-Ranges of at most maxPatchBytes', async (t) => {
  const { coordinator, trace } = await runningJob(t, {}, { maxPatchBytes: 100 });
  await trace.start();
  trace.write('x'.repeat(350));
  await trace.finish({ state: 'success' });
  const ranges = coordinator
    .requests()
    .filter((r) => r.method === 'PATCH')
    .map((r) => r.headers['content-range']);
  t.same(ranges, ['0-99', '100-199', '200-299', '300-349']);
  t.equal(coordinator.job(1)?.checksumOk, true);
});

t.test('416 with a shorter server log: resend from the server offset', async (t) => {
  const { coordinator, trace } = await runningJob(t);
  await trace.start();
  trace.write('first line of output\n');
  await until(() => coordinator.job(1)?.logBytes === 21, 'first line acknowledged');
  coordinator.inject({ kind: 'trace-range', jobId: 1, truncateTo: 6 });
  trace.write('second line\n');
  const outcome = await trace.finish({ state: 'success' });
  t.equal(outcome.kind, 'ok');
  t.equal(coordinator.job(1)?.log, 'first line of output\nsecond line\n');
  t.equal(coordinator.job(1)?.checksumOk, true);
  t.ok(coordinator.requests().some((r) => r.status === 416));
});

t.test('a lost PATCH reply: the resend meets 416 and skips ahead', async (t) => {
  const { coordinator, trace } = await runningJob(t);
  await trace.start();
  coordinator.inject({ kind: 'trace-reply-lost', jobId: 1 });
  trace.write('only once\n');
  await trace.finish({ state: 'success' });
  t.equal(coordinator.job(1)?.log, 'only once\n', 'not duplicated');
  t.equal(coordinator.job(1)?.checksumOk, true);
  t.same(
    coordinator
      .requests()
      .filter((r) => r.method === 'PATCH')
      .map((r) => r.status),
    [500, 416],
  );
});

t.test('output limit: the notice, then nothing; checksum still matches', async (t) => {
  const { coordinator, trace } = await runningJob(t, {}, { outputLimit: 1000 });
  await trace.start();
  for (let i = 0; i < 30; i++) trace.write('y'.repeat(99) + '\n');
  trace.jobResult({ state: 'success' });
  await trace.finish({ state: 'success' });
  const log = coordinator.job(1)?.log ?? '';
  t.match(
    log,
    "Job's log exceeded limit of 1000 bytes. Job execution will continue but no more output will be collected.",
  );
  t.notMatch(log, 'Job succeeded');
  t.ok(log.startsWith('y'.repeat(99) + '\n'));
  t.equal(coordinator.job(1)?.checksumOk, true);
});

t.test('202 on the final update: wait and resend the same PUT', async (t) => {
  const { coordinator, trace } = await runningJob(t);
  await trace.start();
  trace.write('done\n');
  coordinator.inject({ kind: 'update-accepted', jobId: 1, count: 2 });
  const outcome = await trace.finish({ state: 'failed', failureReason: 'script_failure', exitCode: 3 });
  t.equal(outcome.kind, 'ok');
  const puts = coordinator.requests().filter((r) => r.method === 'PUT');
  t.same(
    puts.map((r) => r.status),
    [200, 202, 202, 200],
  );
  const view = coordinator.job(1);
  t.match(view, { state: 'failed', failure_reason: 'script_failure', exit_code: 3, checksumOk: true });
});

t.test('412 on the final update: the whole trace is sent again from 0', async (t) => {
  const { coordinator, trace } = await runningJob(t);
  await trace.start();
  trace.write('abc\n');
  await until(() => coordinator.job(1)?.logBytes === 4, 'trace sent');
  coordinator.inject({ kind: 'update-reset-trace', jobId: 1 });
  const outcome = await trace.finish({ state: 'success' });
  t.same(outcome, { kind: 'ok', attempts: 2 });
  t.equal(coordinator.job(1)?.log, 'abc\n');
  t.equal(coordinator.job(1)?.checksumOk, true);
  const ranges = coordinator
    .requests()
    .filter((r) => r.method === 'PATCH')
    .map((r) => r.headers['content-range']);
  t.same(ranges, ['0-3', '0-3']);
});

t.test('final update errors are retried with backoff, up to the limit', async (t) => {
  const { coordinator, trace } = await runningJob(t);
  await trace.start();
  trace.write('x\n');
  // 5 transport attempts per call: the first final PUT fails, the second goes through.
  coordinator.inject({ kind: 'status', route: 'update', status: 500, count: 5 });
  t.same(await trace.finish({ state: 'success' }), { kind: 'ok', attempts: 2 });
  t.equal(coordinator.job(1)?.state, 'success');
});

t.test('final update gives up after the retry limit', async (t) => {
  const { coordinator, trace } = await runningJob(t, {}, { finalUpdateRetryLimit: 2 });
  await trace.start();
  coordinator.inject({ kind: 'status', route: 'update', status: 502, count: 1000 });
  t.same(await trace.finish({ state: 'success' }), { kind: 'gave-up', attempts: 3 });
  t.equal(coordinator.job(1)?.state, 'running');
});

t.test('Job-Status: canceling fires onCancel(graceful); the final PUT ends it canceled', async (t) => {
  const { coordinator, trace, cancels } = await runningJob(t);
  await trace.start();
  trace.write('working\n');
  coordinator.cancel(1, 'graceful');
  trace.write('more\n');
  await until(() => cancels.length > 0, 'onCancel');
  t.same(cancels, ['graceful']);
  t.equal(trace.cancelRequested, 'graceful');
  trace.write('after_script ran\n');
  const outcome = await trace.finish({ state: 'failed', failureReason: 'job_canceled' });
  t.equal(outcome.kind, 'ok');
  const view = coordinator.job(1);
  t.equal(view?.state, 'canceled');
  t.equal(view?.updates.at(-1)?.failure_reason, 'unknown_failure', 'job_canceled is sent as unknown_failure');
  t.match(view?.log, 'after_script ran\n');
});

t.test('canceling is also seen by the keep-alive PUT when there is no output', async (t) => {
  const { coordinator, trace, cancels } = await runningJob(t);
  await trace.start();
  coordinator.cancel(1, 'graceful');
  await until(() => cancels.length > 0, 'onCancel from keep-alive');
  t.same(cancels, ['graceful']);
  t.ok(
    coordinator.job(1)?.updates.some((u) => u.state === 'running' && u.output !== undefined),
    'keep-alive had output',
  );
  await trace.finish({ state: 'failed' });
});

t.test('hard cancel: onCancel(abort), and the final update ends as aborted', async (t) => {
  const { coordinator, trace, cancels } = await runningJob(t);
  await trace.start();
  coordinator.cancel(1, 'hard');
  trace.write('still writing\n');
  await until(() => cancels.length > 0, 'onCancel');
  t.same(cancels, ['abort']);
  t.same(await trace.finish({ state: 'failed' }), { kind: 'aborted', attempts: 1 });
  t.equal(coordinator.job(1)?.state, 'canceled');
});

t.test('a plain 403 on PATCH aborts', async (t) => {
  const { coordinator, trace, cancels } = await runningJob(t);
  await trace.start();
  coordinator.inject({ kind: 'status', route: 'trace', status: 403 });
  trace.write('x\n');
  await until(() => cancels.length > 0, 'onCancel');
  t.same(cancels, ['abort']);
});

t.test('start: a job canceled before it ran is dropped or canceled', async (t) => {
  const { coordinator, trace } = await runningJob(t);
  coordinator.cancel(1, 'graceful');
  t.equal(await trace.start(), 'cancel');
  await trace.finish({ state: 'failed', failureReason: 'job_canceled' });

  const second = await runningJob(t);
  second.coordinator.cancel(1, 'hard');
  t.equal(await second.trace.start(), 'drop');
});

t.test('the interval follows X-GitLab-Trace-Update-Interval, capped at 15 minutes', async (t) => {
  const { trace } = await runningJob(t, {}, {}, { traceUpdateIntervalSeconds: 5 });
  t.equal(trace.currentIntervalMs, 3000);
  await trace.start();
  t.equal(trace.currentIntervalMs, 5000);
  await trace.finish({ state: 'success' });

  const slow = await runningJob(t, {}, {}, { traceUpdateIntervalSeconds: 3600 });
  await slow.trace.start();
  t.equal(slow.trace.currentIntervalMs, 15 * 60_000);
  await slow.trace.finish({ state: 'success' });
});

t.test('sections are left out when the job does not ask for them', async (t) => {
  const { coordinator, trace, job } = await runningJob(t);
  job.features = { ...job.features, trace_sections: false };
  await trace.start();
  trace.sectionStart('step_script');
  trace.write('x\n');
  trace.sectionEnd('step_script');
  await trace.finish({ state: 'success' });
  t.equal(coordinator.job(1)?.log, 'x\n');
});

t.test('a shutdown signal ends a retrying final update at once', async (t) => {
  const ac = new AbortController();
  // On a clock that never moves the hour-long backoff never ends by itself: only the signal can
  // end it (no bound on how long the machine takes to deliver it).
  const { coordinator, trace } = await runningJob(
    t,
    {},
    {
      signal: ac.signal,
      time: manualTime('2026-01-01T00:00:00Z'),
      finalBackoff: { minMs: 3_600_000, maxMs: 3_600_000 },
    },
  );
  await trace.start();
  coordinator.inject({ kind: 'status', route: 'update', status: 500, count: 1000 });
  const finishing = trace.finish({ state: 'success' });
  setTimeout(() => ac.abort(new Error('shutdown')), 30);
  t.same(await finishing, { kind: 'gave-up', attempts: 0 }, 'the shutdown ended the backoff');
});

t.test('a refused job: the reason in the log, failed / runner_system_failure / exit code 3', async (t) => {
  const { coordinator, trace } = await runningJob(t);
  t.equal(await trace.start(), 'run');
  const outcome = await failRefusedJob(trace, 'services are not supported by runfleet');
  t.match(outcome, { kind: 'ok' });
  const view = coordinator.job(1);
  t.match(view, { state: 'failed', failure_reason: 'runner_system_failure', exit_code: 3, checksumOk: true });
  t.match(view?.log, 'ERROR: services are not supported by runfleet');
  t.match(view?.log, 'ERROR: Job failed: services are not supported by runfleet');
});

t.test('the first output is PATCHed shortly after it arrives, later output at the interval', async (t) => {
  const clock = manualTime('2026-01-01T00:00:00Z');
  const { coordinator, trace } = await runningJob(t, {}, { time: clock, firstOutputDelayMs: 150 });
  const patches = () => coordinator.requests().filter((r) => r.method === 'PATCH').length;
  const settle = () => new Promise((r) => setTimeout(r, 50));
  t.equal(await trace.start(), 'run');
  trace.writeSystem('banner\n');
  clock.advance(1000);
  await settle();
  t.equal(patches(), 0, "runfleet's own lines alone wait for the interval");
  trace.write('first line\n');
  clock.advance(100);
  trace.write('second line\n');
  await settle();
  t.equal(patches(), 0, 'output is coalesced for the first-output delay');
  clock.advance(50);
  // The coordinator sees the PATCH before the trace has its answer; the next interval is timed
  // from the answer, so wait until the loop has scheduled it before moving the clock on.
  await until(() => patches() === 1 && clock.pending() > 0, 'the first PATCH and the next interval');
  t.match(coordinator.job(1)?.log, 'banner\nfirst line\nsecond line\n');
  trace.write('third line\n');
  clock.advance(2000);
  await settle();
  t.equal(patches(), 1, 'later output waits for the interval');
  clock.advance(1000);
  await until(() => patches() === 2, 'the interval PATCH');
  t.match(coordinator.job(1)?.log, 'third line\n');
});
