/**
 * runStages's stage order on a real local sandbox: steps' `when` after a failure, and the
 * pre/post get_sources hooks.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { LocalConnector } from '../../../src/runtime/connectors/local-connector.js';
import { InstanceExecutor } from '../../../src/runtime/executors/instance-executor.js';
import { MemoryJobOutput } from '../../../src/runtime/executors/memory-output.js';
import { runStages } from '../../../src/runtime/executors/stage-runner.js';
import type { JobPayload, JobStep } from '../../../src/runtime/gitlab/job.js';
import { makeJob } from '../../fixtures/runtime/job.js';

const state = mkdtempSync(join(tmpdir(), 'rf-runjob-'));
t.teardown(() => rmSync(state, { recursive: true, force: true }));

async function run(job: JobPayload) {
  const workdir = join(state, 'work');
  const executor = new InstanceExecutor({
    connector: new LocalConnector({ workdir }),
    buildsDir: join(workdir, 'builds'),
  });
  const output = new MemoryJobOutput();
  const result = await runStages(job, executor, output);
  return { result, log: output.text(), sections: output.sections };
}

const noSources = [{ key: 'GIT_STRATEGY', value: 'none' }];
const step = (name: string, script: string[], when?: string): JobStep => ({
  name,
  script,
  ...(when ? { when } : {}),
});

t.test(
  "steps after a failure run only when their when says so; the first failure's exit code wins",
  async (t) => {
    const { result, log, sections } = await run(
      makeJob({
        variables: noSources,
        steps: [
          step('script', ['echo main; exit 4']),
          step('release', ['echo release-on-success'], 'on_success'),
          step('notify', ['echo notify-on-failure; exit 9'], 'on_failure'),
          step('report', ['echo report-always'], 'always'),
          step('after_script', ['echo "after: $CI_JOB_STATUS"'], 'always'),
        ],
      }),
    );
    t.match(result, { state: 'failed', failureReason: 'script_failure', exitCode: 4 });
    t.notMatch(log, /release-on-success\n/, 'an on_success step is skipped after a failure');
    t.match(log, /notify-on-failure\n/);
    t.match(log, /report-always\n/);
    t.match(log, /after: failed/);
    t.same(
      sections.filter((s) => s.startsWith('step_')),
      ['step_script', 'step_notify', 'step_report'],
    );
  },
);

t.test('without a failure, on_failure steps are skipped and the rest run in order', async (t) => {
  const { result, sections } = await run(
    makeJob({
      variables: noSources,
      steps: [step('script', ['true']), step('notify', ['exit 1'], 'on_failure'), step('release', ['true'])],
    }),
  );
  t.equal(result.state, 'success');
  t.same(
    sections.filter((s) => s.startsWith('step_')),
    ['step_script', 'step_release'],
  );
});

t.test('pre and post get_sources hooks run around the fetch, in the builds and project dirs', async (t) => {
  const job = makeJob({ variables: noSources, script: ['echo main'] });
  job.hooks = [
    { name: 'pre_get_sources_script', script: ['echo "pre in $(basename "$PWD")"'] },
    { name: 'post_get_sources_script', script: ['echo "post in $(basename "$PWD")"'] },
  ];
  const { result, log } = await run(job);
  t.equal(result.state, 'success', log);
  t.match(log, /pre in builds\n[\s\S]*Skipping Git repository setup[\s\S]*post in project\n/);

  const failing = makeJob({ variables: noSources, script: ['echo never'] });
  failing.hooks = [{ name: 'pre_get_sources_script', script: ['exit 3'] }];
  const bad = await run(failing);
  t.match(bad.result, { state: 'failed', failureReason: 'script_failure', exitCode: 3 });
  t.notMatch(bad.log, /never\n/, 'a failing hook stops the job before its steps');
});
