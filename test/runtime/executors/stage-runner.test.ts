/**
 * runStages on a real local sandbox: steps' `when` after a failure, the pre/post get_sources
 * hooks, GET_SOURCES_ATTEMPTS, stage headings, the job deadline and the RUNNER_*_TIMEOUT and
 * AFTER_SCRIPT_IGNORE_ERRORS settings.
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
import { makeBareRepo } from '../../helpers/topology/git-repo.js';

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
  const repo = makeBareRepo(t);
  const withRepo = (script: string[]) => {
    const job = makeJob({ repoUrl: repo.url, sha: repo.sha, script, depth: 0 });
    job.git_info.refspecs = ['+refs/heads/*:refs/remotes/origin/*'];
    return job;
  };
  const job = withRepo(['echo main']);
  job.hooks = [
    { name: 'pre_get_sources_script', script: ['echo "pre in $(basename "$PWD")"'] },
    { name: 'post_get_sources_script', script: ['echo "post in $(basename "$PWD")"'] },
  ];
  const { result, log } = await run(job);
  t.equal(result.state, 'success', log);
  t.match(log, /pre in builds\n[\s\S]*Fetching changes\.\.\.[\s\S]*post in project\n/);

  const failing = withRepo(['echo never']);
  failing.hooks = [{ name: 'pre_get_sources_script', script: ['exit 3'] }];
  const bad = await run(failing);
  t.match(bad.result, { state: 'failed', failureReason: 'script_failure', exitCode: 3 });
  t.notMatch(bad.log, /never\n/, 'a failing hook stops the job before its steps');

  // GIT_STRATEGY none: GitLab Runner runs neither hook.
  const none = makeJob({ variables: noSources, script: ['echo main'] });
  none.hooks = [{ name: 'pre_get_sources_script', script: ['echo pre-ran'] }];
  const skipped = await run(none);
  t.equal(skipped.result.state, 'success');
  t.notMatch(skipped.log, 'pre-ran');
  t.match(skipped.log, 'Skipping Git repository setup');
});

t.test('GET_SOURCES_ATTEMPTS: a failed get_sources runs again after clearing the worktree', async (t) => {
  const repo = makeBareRepo(t);
  const marker = join(state, `flaky-${process.pid}`);
  const flaky = (attempts?: string) => {
    const job = makeJob({
      repoUrl: repo.url,
      sha: repo.sha,
      script: ['cat README.md'],
      depth: 0,
      variables: attempts ? [{ key: 'GET_SOURCES_ATTEMPTS', value: attempts }] : [],
    });
    job.git_info.refspecs = ['+refs/heads/*:refs/remotes/origin/*'];
    // Fails the first time only, as a flaky network would.
    job.hooks = [
      { name: 'pre_get_sources_script', script: [`test -f ${marker} || { touch ${marker}; exit 9; }`] },
    ];
    return job;
  };
  rmSync(marker, { force: true });
  const once = await run(flaky());
  t.match(once.result, { state: 'failed', exitCode: 9 }, 'one attempt by default');
  rmSync(marker, { force: true });
  const twice = await run(flaky('2'));
  t.equal(twice.result.state, 'success', twice.log);
  t.match(
    twice.log,
    /WARNING: Retrying\.\.\.\n[\s\S]*Deleting all tracked and untracked files due to source fetch failure/,
  );
  t.match(twice.log, 'hello\n', 'the retry checked the sources out');
});

t.test("stage headings are GitLab Runner's", async (t) => {
  const { log } = await run(makeJob({ variables: noSources, afterScript: ['true'] }));
  t.match(log, 'Getting source from Git repository\n');
  t.match(log, 'Executing "step_script" stage of the job script\n');
  t.match(log, 'Running after_script\n');
  t.match(log, 'Cleaning up project directory and file based variables\n');
});

t.test('RUNNER_SCRIPT_TIMEOUT stops the steps; after_script still runs and sees timedout', async (t) => {
  const { result, log } = await run(
    makeJob({
      variables: [...noSources, { key: 'RUNNER_SCRIPT_TIMEOUT', value: '700ms' }],
      script: ['sleep 20'],
      afterScript: ['echo "after=$CI_JOB_STATUS"'],
    }),
  );
  t.match(result, { state: 'failed', status: 'timedout', failureReason: 'job_execution_timeout' });
  t.match(log, 'step_script could not run to completion because the timeout was exceeded');
  t.match(log, 'after=timedout');
});

t.test('the job deadline stops everything: after_script gets no time past it', async (t) => {
  const workdir = join(state, 'work');
  const executor = new InstanceExecutor({
    connector: new LocalConnector({ workdir }),
    buildsDir: join(workdir, 'builds'),
  });
  const output = new MemoryJobOutput();
  const result = await runStages(
    makeJob({ variables: noSources, script: ['sleep 20'], afterScript: ['echo after-ran'] }),
    executor,
    output,
    { timeoutMs: 700 },
  );
  t.match(result, { status: 'timedout', failureReason: 'job_execution_timeout' });
  t.notMatch(output.text(), 'after-ran');
  t.match(output.text(), 'ERROR: Job failed: execution took longer than 3600 seconds');
});

t.test('RUNNER_AFTER_SCRIPT_TIMEOUT and AFTER_SCRIPT_IGNORE_ERRORS', async (t) => {
  const ignored = await run(makeJob({ variables: noSources, afterScript: ['exit 4'] }));
  t.equal(ignored.result.state, 'success', 'after_script errors are ignored by default');
  t.match(ignored.log, 'WARNING: after_script failed, but job will continue unaffected: exit code 4');
  t.notMatch(ignored.log, 'WARNING: WARNING:');

  const counted = await run(
    makeJob({
      variables: [...noSources, { key: 'AFTER_SCRIPT_IGNORE_ERRORS', value: 'false' }],
      afterScript: ['exit 4'],
    }),
  );
  t.match(counted.result, { state: 'failed', failureReason: 'script_failure', exitCode: 4 });

  const slow = await run(
    makeJob({
      variables: [...noSources, { key: 'RUNNER_AFTER_SCRIPT_TIMEOUT', value: '500ms' }],
      afterScript: ['sleep 20', 'echo not-reached'],
    }),
  );
  t.equal(slow.result.state, 'success');
  t.match(slow.log, 'after_script could not run to completion because the timeout was exceeded');
  t.notMatch(slow.log, 'not-reached');

  const bad = await run(
    makeJob({ variables: [...noSources, { key: 'RUNNER_SCRIPT_TIMEOUT', value: '10' }] }),
  );
  t.match(bad.log, 'WARNING: Ignoring malformed RUNNER_SCRIPT_TIMEOUT timeout: 10');
});
