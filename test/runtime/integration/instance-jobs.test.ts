/**
 * The job runtime inside the real manager, end to end, with the instance executor: the daemon
 * brings a static fleet's host (a real sshd on 127.x.y.z) to ready, the runtime takes jobs from the
 * GitLab-compatible coordinator over HTTP and runs them over SSH. Every test asserts what GitLab
 * would see (state, failure_reason, exit_code, the stored log, its checksum) and that nothing of
 * the job is left running on the instance.
 */
import t, { type Test } from 'tap';
import type { Harness } from './harness.js';
import { jobProcessesOn, startHarness, staticFleetYaml } from './harness.js';
import { makeBareRepo } from '../../helpers/topology/git-repo.js';
import { processesMatching, waitFor } from '../../helpers/topology/processes.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startSshd, type SshdInstance } from '../../helpers/topology/sshd.js';

const FLEET = 'it-instance';

/**
 * A long sleep whose command line is unique to this test process (`sleep 3001.<pid>`), so the
 * process-table checks cannot see another run's processes.
 */
const longSleep = (n: number) => `sleep ${n}.${process.pid}`;

/** Nothing of the job runs on the instance any more, and its slot is free. */
async function assertNothingLeft(t: Test, h: Harness, sshd: SshdInstance, needle?: string): Promise<void> {
  const clean = await waitFor(
    () => jobProcessesOn(sshd).length === 0 && (!needle || processesMatching(needle).length === 0),
    5000,
    50,
  );
  t.ok(clean, `no job process left on the instance: ${JSON.stringify(jobProcessesOn(sshd))}`);
  t.ok(await waitFor(() => h.acquired() === 0, 5000, 20), 'the job slot is released');
}

/** How often `needle` occurs in `text`. */
const count = (text: string, needle: string) => text.split(needle).length - 1;

if (requireOrSkip(t, 'sshd', 'ssh-keygen', 'git')) {
  const sshd = await startSshd(t);
  const h = await startHarness(t, {
    fleetName: FLEET,
    fleetYaml: staticFleetYaml(FLEET, sshd, 2),
  });
  const [instance] = await h.readyInstances(1);

  t.test('success: the job clones a local bare repository on the instance over SSH', async (t) => {
    const repo = makeBareRepo(t, { 'README.md': 'hello from the bare repo\n' });
    h.enqueue(1, {
      repoUrl: repo.url,
      sha: repo.sha,
      ref: repo.ref,
      script: ['cat README.md', 'echo "head=$(git rev-parse HEAD)"', 'echo "on $(hostname) as $(id -un)"'],
    });
    const job = await h.finished(1);
    t.equal(job.state, 'success', job.log);
    t.equal(job.failure_reason, undefined);
    t.match(job.log, 'hello from the bare repo');
    t.match(job.log, `head=${repo.sha}`, 'the sha GitLab asked for is checked out');
    t.match(job.log, /section_start:\d+:get_sources/, 'stages are log sections');
    t.match(job.log, /section_end:\d+:step_script/);
    t.equal(job.checksumOk, true, 'the final checksum and size match the stored trace');
    t.equal(job.assignedTo, h.coordinator.runners()[0]?.systemId);
    await assertNothingLeft(t, h, sshd);
    const row = (await h.instances()).find((i) => i.id === instance!.id);
    t.equal(row?.use_count, 1, 'the job counted as one use of the instance');
  });

  t.test('script failure: the exit code reaches GitLab with script_failure', async (t) => {
    h.enqueue(2, { script: ['echo "about to fail"', 'exit 7', 'echo "not reached:$CI_JOB_ID"'] });
    const job = await h.finished(2);
    t.equal(job.state, 'failed');
    t.equal(job.failure_reason, 'script_failure');
    t.equal(job.exit_code, 7);
    t.match(job.log, 'ERROR: Job failed: exit code 7');
    t.notMatch(job.log, 'not reached:2');
    t.equal(job.checksumOk, true);
    await assertNothingLeft(t, h, sshd);
  });

  t.test('masking: masked variables and token prefixes, also when split across chunks', async (t) => {
    const secret = 'Zq7-Secret-Value-9Xw';
    const tokenTail = 'AbCdEf0123456789xyz';
    h.enqueue(3, {
      variables: {
        SECRET: { value: secret, masked: true },
        // Public: only the glpat- prefix rule can hide it.
        TOKEN_TAIL: tokenTail,
      },
      script: [
        'echo "whole=$SECRET"',
        // Each half is its own write, 300 ms apart: several trace PATCHes go out in between.
        `printf 'split=%s' "$(printf '%s' "$SECRET" | cut -c1-8)"; sleep 0.3; printf '%s\\n' "$(printf '%s' "$SECRET" | cut -c9-)"`,
        `printf 'token=glpat-'; sleep 0.3; printf '%s\\n' "$TOKEN_TAIL"`,
      ],
    });
    const job = await h.finished(3);
    t.equal(job.state, 'success', job.log);
    t.match(job.log, 'whole=[MASKED]');
    t.match(job.log, 'split=[MASKED]');
    t.match(job.log, 'token=glpat-[MASKED]');
    t.notMatch(job.log, secret);
    t.notMatch(job.log, 'Zq7-Secr', 'no half of the secret leaks either');
    t.notMatch(job.log, tokenTail);
    t.ok(job.patches >= 3, `the log went out in several PATCHes (${job.patches})`);
    t.equal(job.checksumOk, true, 'the checksum is of the masked log');
    await assertNothingLeft(t, h, sshd);
  });

  t.test('416 recovery: the trace is re-sent from the server’s Range; the checksum matches', async (t) => {
    h.enqueue(4, {
      script: [
        'echo "part-one:$CI_JOB_ID"',
        'sleep 0.6',
        'echo "part-two:$CI_JOB_ID"',
        'sleep 0.6',
        'echo "part-three:$CI_JOB_ID"',
      ],
    });
    await h.logShows(4, 'part-one:4');
    // The server lost the tail of what it had: the next PATCH gets 416 with Range 0-10.
    h.coordinator.inject({ kind: 'trace-range', jobId: 4, truncateTo: 10 });
    await h.logShows(4, 'part-two:4');
    // A PATCH stored but its reply lost: the resend of the same bytes meets a 416.
    h.coordinator.inject({ kind: 'trace-reply-lost', jobId: 4 });
    const job = await h.finished(4);
    t.equal(job.state, 'success', job.log);
    for (const part of ['part-one:4', 'part-two:4', 'part-three:4'])
      t.equal(count(job.log, part), 1, `${part} stored exactly once`);
    const refused = h.coordinator
      .requests()
      .filter((r) => r.method === 'PATCH' && r.url.includes('/jobs/4/trace') && r.status === 416);
    t.ok(refused.length >= 2, `both faults answered 416 (${refused.length})`);
    t.equal(job.checksumOk, true, 'the final checksum matches the recovered trace');
    t.equal(job.bytesize, job.logBytes);
  });

  t.test(
    'graceful cancel: the script stops, after_script runs as canceled, the job ends failed',
    async (t) => {
      h.enqueue(5, {
        script: ['echo "marker:$CI_JOB_ID:started"', longSleep(3001), 'echo "never:$CI_JOB_ID"'],
        afterScript: ['echo "after:$CI_JOB_ID:$CI_JOB_STATUS"'],
      });
      await h.logShows(5, 'marker:5:started');
      // The marker line can reach GitLab before the next command has started: wait for it (a bound).
      t.ok(
        await waitFor(() => processesMatching(longSleep(3001)).length === 1, 20_000, 20),
        'the step runs on the instance',
      );
      t.ok(jobProcessesOn(sshd).length > 0, 'its shell shows among the instance’s job processes');
      h.coordinator.cancel(5, 'graceful');
      const job = await h.finished(5);
      t.equal(job.state, 'canceled', 'canceling + the final update = canceled');
      t.equal(job.updates.at(-1)?.state, 'failed', 'the runner reported the job failed');
      t.match(job.log, 'after:5:canceled', 'after_script ran with CI_JOB_STATUS=canceled');
      t.notMatch(job.log, 'never:5');
      t.equal(job.checksumOk, true);
      await assertNothingLeft(t, h, sshd, longSleep(3001));
    },
  );

  t.test('hard cancel: canceled/403 stops the job at once, after_script does not run', async (t) => {
    h.enqueue(6, {
      script: ['echo "marker:$CI_JOB_ID:started"', longSleep(3002)],
      afterScript: ['echo "after:$CI_JOB_ID"'],
    });
    await h.logShows(6, 'marker:6:started');
    // The marker line can reach GitLab before the next command has started: wait for it (a bound).
    t.ok(
      await waitFor(() => processesMatching(longSleep(3002)).length === 1, 20_000, 20),
      'the step runs on the instance',
    );
    t.ok(jobProcessesOn(sshd).length > 0, 'its shell shows among the instance’s job processes');
    const canceledAt = Date.now();
    h.coordinator.cancel(6, 'hard');
    // The step sleeps for 50 minutes: the bounded wait in assertNothingLeft only passes if the
    // cancel killed it. How long that took depends on the machine's load (a figure, not a check).
    await assertNothingLeft(t, h, sshd, longSleep(3002));
    t.comment(`stopped ${Date.now() - canceledAt} ms after the cancel`);
    const job = h.coordinator.job(6)!;
    t.equal(job.state, 'canceled');
    t.notMatch(job.log, 'after:6', 'after_script did not run');
    t.notOk(
      job.updates.some((u) => u.state === 'success'),
      'GitLab accepted no final update after the cancel',
    );
    const done = h.logs.find((l) => l.msg === 'job finished' && l['jobId'] === 6);
    t.equal(done?.['state'], 'failed', 'the runtime ended the job as failed');
  });

  t.test('timeout: runner_info.timeout ends the job as job_execution_timeout', async (t) => {
    h.enqueue(7, {
      timeout: 2,
      script: ['echo "marker:$CI_JOB_ID:started"', longSleep(3003)],
      afterScript: ['echo "after:$CI_JOB_ID:$CI_JOB_STATUS"'],
    });
    const started = Date.now();
    // The step sleeps for 50 minutes: the job only finishes because its 2 s timeout ended it (the
    // failure reason says so); how long after depends on the machine's load (a figure, not a check).
    const job = await h.finished(7);
    t.comment(`finished ${Date.now() - started} ms after it was queued`);
    t.equal(job.state, 'failed');
    t.equal(job.failure_reason, 'job_execution_timeout');
    t.equal(job.exit_code, undefined, 'a timeout has no script exit code');
    t.match(job.log, 'execution took longer than 2 seconds');
    t.notMatch(job.log, 'after:7:', 'no after_script past the job deadline (as GitLab Runner)');
    t.equal(job.checksumOk, true);
    await assertNothingLeft(t, h, sshd, longSleep(3003));
  });
}
