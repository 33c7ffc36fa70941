import t from 'tap';
import { createHmac } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  loadSystemId,
  mapFailureReason,
  runnerInfo,
  RUNFLEET_FEATURES,
  shortToken,
} from '../../../src/runtime/gitlab/runner-info.js';
import { GITLAB_RUNNER_FEATURE_KEYS } from './conformance/strict-checks.js';

t.test('failure reasons: basic ones always, others only when the server lists them', async (t) => {
  const listed = ['script_failure', 'image_pull_failure'];
  const cases: [string | undefined, readonly string[] | undefined, string][] = [
    ['script_failure', [], 'script_failure'],
    ['runner_system_failure', undefined, 'runner_system_failure'],
    ['job_execution_timeout', [], 'job_execution_timeout'],
    ['image_pull_failure', listed, 'image_pull_failure'],
    ['image_pull_failure', [], 'runner_system_failure'],
    ['runner_configuration_error', [], 'script_failure'],
    ['runner_external_dependency_failure', undefined, 'runner_system_failure'],
    ['runner_interrupted', [], 'unknown_failure'],
    ['job_canceled', listed, 'unknown_failure'],
    ['', [], 'script_failure'],
    [undefined, [], 'script_failure'],
  ];
  for (const [reason, supported, want] of cases) {
    t.equal(mapFailureReason(reason, supported), want, `${reason} with [${supported?.join(',') ?? ''}]`);
  }
});

t.test('info sends every FeaturesInfo key, true only for what runfleet implements', async (t) => {
  const info = runnerInfo({ version: '1.2.3', executor: 'instance' });
  t.match(info, {
    name: 'runfleet',
    version: '1.2.3',
    shell: 'bash',
    executor: 'instance',
    config: { gpus: '' },
  });
  // GitLab Runner's FeaturesInfo json keys (R:common/network.go), every one sent.
  const gitlabRunnerKeys = GITLAB_RUNNER_FEATURE_KEYS;
  t.same(
    Object.keys(info.features).sort(),
    [...gitlabRunnerKeys].sort(),
    'exactly the keys gitlab-runner sends',
  );
  t.same(Object.keys(RUNFLEET_FEATURES), gitlabRunnerKeys, 'in gitlab-runner order');
  for (const off of ['two_phase_job_commit', 'session', 'terminal', 'vault_secrets', 'image']) {
    t.equal(info.features[off], false, `${off}: false, and sent`);
  }
  // The artifact features: executors/artifact-stages.ts, proven by
  // test/runtime/integration/artifact-jobs.test.ts against a coordinator that drops jobs as
  // runner_unsupported when one is missing.
  t.same(
    Object.keys(info.features)
      .filter((k) => k.includes('artifacts') && info.features[k])
      .sort(),
    ['artifacts', 'artifacts_exclude', 'upload_multiple_artifacts', 'upload_raw_artifacts'],
    'exactly the artifact features implemented',
  );
  for (const on of ['variables', 'masking', 'refspecs', 'cancel_gracefully', 'trace_checksum', 'shared']) {
    t.equal(info.features[on], true, `${on}: true`);
  }
  const docker = runnerInfo({ version: '1', executor: 'docker' });
  t.equal(docker.executor, 'docker-autoscaler', "gitlab-runner's name for docker on autoscaled instances");
  for (const on of [
    'image',
    'services',
    'service_variables',
    'service_multiple_aliases',
    'image_executor_opts',
  ]) {
    t.equal(docker.features[on], true, `docker: ${on}`);
  }
  t.equal(docker.features['shared'], false);
  t.equal(info.features['cache'], true, 'caches are restored and saved (runtime/cache)');
  t.equal(info.features['fallback_cache_keys'], true, 'fallback_keys are tried in order');
  t.equal(info.features['services'], false, 'the instance executor runs no services');
  t.ok(['amd64', 'arm64', '386', 'arm'].includes(info.architecture) || info.architecture === process.arch);
});

t.test('system_id from the machine id, persisted; r_ without one', async (t) => {
  const dir = t.testdir({ 'machine-id': 'b08dfa6083e7567a1921a715000001fb\n' });
  const path = join(dir, 'state', '.runner_system_id');
  const expected =
    's_' +
    createHmac('sha256', 'b08dfa6083e7567a1921a715000001fb')
      .update('gitlab-runner')
      .digest('hex')
      .slice(0, 12);
  const id = await loadSystemId({ path, machineIdPaths: [join(dir, 'missing'), join(dir, 'machine-id')] });
  t.equal(id, expected);
  t.equal((await readFile(path, 'utf8')).trim(), expected, 'persisted');

  await writeFile(path, 'r_AbCdEf123456\n');
  t.equal(
    await loadSystemId({ path, machineIdPaths: [join(dir, 'machine-id')] }),
    'r_AbCdEf123456',
    'stored id wins',
  );

  await writeFile(path, 'garbage');
  t.equal(
    await loadSystemId({ path, machineIdPaths: [join(dir, 'machine-id')] }),
    expected,
    'invalid id replaced',
  );

  const other = join(dir, 'other-id');
  const random = await loadSystemId({ path: other, machineIdPaths: [join(dir, 'missing')] });
  t.match(random, /^r_[a-zA-Z0-9]{12}$/);
  t.equal(
    await loadSystemId({ path: other, machineIdPaths: [join(dir, 'missing')] }),
    random,
    'stable once stored',
  );
});

t.test('short token', async (t) => {
  t.equal(shortToken('glrt-t1_AbCdEfGhIjKl'), 'AbCdEfGhI');
  t.equal(shortToken('glrt-XyZ123456789'), 'XyZ123456');
  t.equal(shortToken('glcbt-64_abcdefghij'), '64_abcdef');
});
