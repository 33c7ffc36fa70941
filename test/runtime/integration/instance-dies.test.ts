/**
 * An instance that dies mid-job, in the real manager: the fleet's instances are real sshds
 * started by the test provider (`sshd-provider.ts`). The sshd and the job's processes are killed
 * while the job runs; the job must end as `runner_system_failure` (and not be run again), the
 * daemon must remove the dead instance and make a new one ready, and the next job must run there.
 */
import t from 'tap';
import { createSshdProvider } from '../../helpers/sshd-provider.js';
import { processesMatching, waitFor } from '../../helpers/topology/processes.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { jobProcessesOn, startHarness } from './harness.js';

const FLEET = 'it-dies';

/**
 * A long sleep whose command line is unique to this test process (`sleep 3001.<pid>`), so the
 * process-table checks cannot see another run's processes.
 */
const longSleep = (n: number) => `sleep ${n}.${process.pid}`;

if (requireOrSkip(t, 'sshd', 'ssh-keygen')) {
  t.test('an instance that dies mid-job: runner_system_failure, not retried, replaced', async (t) => {
    const provider = createSshdProvider(t);
    const h = await startHarness(t, {
      fleetName: FLEET,
      providers: () => provider,
      // One instance at most: the new one can only be the replacement of the dead one.
      fleetYaml: [
        `name: ${FLEET}`,
        'provider: { type: local }',
        'executor: instance',
        'capacity_per_instance: 1',
        'max_instances: 1',
        'policy:',
        '  - idle_count: 1',
        '    idle_time: 10m',
      ].join('\n'),
    });
    const [first] = await h.readyInstances(1);
    const dying = provider.instances().find((i) => i.id === first!.id);
    t.ok(dying, `the daemon created ${first!.id} through the provider`);

    h.enqueue(1, {
      script: ['echo "marker:$CI_JOB_ID:started"', longSleep(3005), 'echo "never:$CI_JOB_ID"'],
      afterScript: ['echo "after:$CI_JOB_ID"'],
    });
    await h.logShows(1, 'marker:1:started');
    // The marker line can reach GitLab before the next command has started: wait for it (a bound).
    t.ok(
      await waitFor(() => processesMatching(longSleep(3005)).length === 1, 20_000, 20),
      'the job runs on the instance',
    );
    dying!.sshd.crash();

    const job = await h.finished(1);
    t.equal(job.state, 'failed', 'the job failed', { log: job.log });
    t.equal(job.failure_reason, 'runner_system_failure');
    t.equal(job.exit_code, undefined);
    t.match(job.log, 'ERROR: Job failed (system failure)');
    t.notMatch(job.log, 'never:1');
    t.equal(job.checksumOk, true, 'the trace is complete');
    t.equal(job.updates.filter((u) => u.state !== 'running').length, 1, 'one final update: no retry');
    t.equal(processesMatching(longSleep(3005)).length, 0, 'nothing of the job survived the crash');

    // The daemon removes the dead instance (it is drained as unhealthy) and replaces it.
    const replaced = await waitFor(
      async () => {
        const now = await h.instances();
        return now.length === 1 && now[0]!.id !== first!.id && now[0]!.state === 'ready';
      },
      20_000,
      100,
    );
    t.ok(replaced, `a new instance is ready: ${JSON.stringify(await h.instances())}`);
    t.ok(provider.decreased.includes(first!.id), 'the dead instance was decreased at the provider');
    const [fresh] = provider.instances();
    t.not(fresh?.id, first!.id);
    t.not(fresh?.sshd.host, dying!.sshd.host, 'the replacement has an address of its own');

    h.enqueue(2, { script: ['echo "marker:$CI_JOB_ID:on-the-new-instance"'] });
    const next = await h.finished(2);
    t.equal(next.state, 'success', 'the next job succeeded', { log: next.log });
    t.match(next.log, `on instance ${fresh!.id}`, 'it ran on the replacement');
    t.equal(next.checksumOk, true);

    // The runtime logs a job as finished once its slot is released, just after the final update.
    const ranOn = () =>
      h.logs
        .filter((l) => l.msg === 'job finished')
        .map((l) => `${String(l['jobId'])}@${String(l['instance'])}:${String(l['state'])}`);
    await waitFor(() => ranOn().length >= 2, 5000, 20);
    t.same(
      ranOn(),
      [`1@${first!.id}:failed`, `2@${fresh!.id}:success`],
      'no job ran twice or on the dead one',
    );
    t.ok(await waitFor(() => jobProcessesOn(fresh!.sshd).length === 0 && h.acquired() === 0, 5000, 50));
  });
}
