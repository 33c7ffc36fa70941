/**
 * The job runtime inside the real manager with the docker executor: a static fleet whose host is
 * a real sshd, the job containers on a real dockerd reached through that SSH connection
 * (stream-local forwarding to the instance's Docker socket). One job succeeds in a busybox image
 * with sources fetched on the host; one names an image that cannot be pulled; one reaches a busybox
 * httpd service by its alias; one has a service whose port never opens; one names its image with
 * `$VAR`s; one keeps state in /tmp from script to after_script; one pulls a private image from a
 * real registry with the job's credentials. Nothing (container, network) outlives a job.
 */
import { join } from 'node:path';
import t from 'tap';
import { MANAGED_LABEL } from '../../../src/runtime/executors/docker-api.js';
import { jobProcessesOn, startHarness } from './harness.js';
import { importBusyboxImage, startDockerd, TEST_IMAGE } from '../../helpers/topology/dockerd.js';
import { startRegistry } from '../../helpers/topology/registry.js';
import { makeBareRepo } from '../../helpers/topology/git-repo.js';
import { waitFor } from '../../helpers/topology/processes.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startSshd } from '../../helpers/topology/sshd.js';

const FLEET = 'it-docker';

if (requireOrSkip(t, 'sshd', 'ssh-keygen', 'dockerd', 'docker', 'busybox', 'git')) {
  const [dockerd, sshd] = await Promise.all([startDockerd(t), startSshd(t)]);
  const h = await startHarness(t, {
    fleetName: FLEET,
    fleetYaml: [
      `name: ${FLEET}`,
      `provider: { type: static, hosts: ['${sshd.host}:${sshd.port}'] }`,
      'executor: docker',
      'docker:',
      `  image: ${TEST_IMAGE}`,
      '  pull_policy: if-not-present',
      `  host: unix://${dockerd.socketPath}`,
      '  wait_for_services_timeout: 3',
      'capacity_per_instance: 2',
      'max_instances: 1',
      `connector: { username: root, key_path: ${join(sshd.dir, 'userkey')} }`,
      'policy:',
      '  - idle_count: 2',
      '    idle_time: 10m',
    ].join('\n'),
  });
  await h.readyInstances(1);

  /** Containers the executor made (running or not): none may outlive a job. */
  const managedContainers = () =>
    [
      ...dockerd.cli('ps', '-aq', '--filter', `label=${MANAGED_LABEL}=true`).split('\n'),
      ...dockerd.cli('network', 'ls', '-q', '--filter', `label=${MANAGED_LABEL}=true`).split('\n'),
    ].filter((l) => l.trim() !== '');
  const nothingLeft = async () => {
    const clean = await waitFor(
      () => managedContainers().length === 0 && jobProcessesOn(sshd).length === 0 && h.acquired() === 0,
      5000,
      50,
    );
    return { clean, containers: managedContainers(), processes: jobProcessesOn(sshd) };
  };

  t.test(`success in ${TEST_IMAGE}: sources fetched on the host, the script under sh`, async (t) => {
    const repo = makeBareRepo(t, { 'README.md': 'hello from the bare repo\n' });
    h.enqueue(1, {
      repoUrl: repo.url,
      sha: repo.sha,
      ref: repo.ref,
      script: ['cat README.md', 'echo "image=$CI_JOB_IMAGE"', 'command -v git || echo "no-git:$CI_JOB_ID"'],
      afterScript: ['echo "after:$CI_JOB_ID:$CI_JOB_STATUS"'],
    });
    const job = await h.finished(1, 30_000);
    t.equal(job.state, 'success', 'the job succeeded', { log: job.log });
    t.match(job.log, 'hello from the bare repo');
    t.match(job.log, `image=${TEST_IMAGE}`);
    t.match(job.log, 'no-git:1', 'the image has no git: get_sources ran outside it');
    t.match(job.log, 'after:1:success');
    t.equal(job.checksumOk, true);
    t.same(await nothingLeft(), { clean: true, containers: [], processes: [] }, 'containers removed');
  });

  t.test('artifacts: a job in the busybox image uploads, a dependent job gets them back', async (t) => {
    // The image has no tar or zip of GitLab's: the build dir is on the host, read from there.
    h.enqueue(11, {
      name: 'build',
      script: ['mkdir -p dist/sub', 'echo built-in-busybox > dist/sub/out.txt', 'echo skip > dist/skip.log'],
      artifacts: [{ name: 'dist', paths: ['dist/'], exclude: ['**/*.log'], artifact_format: 'zip' }],
    });
    const build = await h.finished(11, 30_000);
    t.equal(build.state, 'success', build.log);
    t.match(build.log, 'dist: found 3 matching artifact files and directories');
    t.match(build.log, '**/*.log: excluded 1 files');
    h.enqueue(12, {
      dependencies: [{ id: 11, name: 'build' }],
      script: ['cat dist/sub/out.txt', 'test ! -e dist/skip.log && echo "no-log:$CI_JOB_ID"'],
    });
    const test = await h.finished(12, 30_000);
    t.equal(test.state, 'success', test.log);
    t.match(test.log, 'built-in-busybox');
    t.match(test.log, 'no-log:12');
    t.same(await nothingLeft(), { clean: true, containers: [], processes: [] }, 'containers removed');
  });

  t.test('a missing image fails as image_pull_failure with a message naming it', async (t) => {
    // A registry on a closed loopback port: the pull fails at once, without leaving the machine.
    const image = '127.0.0.1:9/runfleet-test/missing:1';
    h.enqueue(2, { image, script: ['echo "never:$CI_JOB_ID"'] });
    const job = await h.finished(2, 30_000);
    t.equal(job.state, 'failed', 'the job failed', { log: job.log });
    t.equal(job.failure_reason, 'image_pull_failure');
    t.equal(job.exit_code, undefined);
    const error = job.log.split('\n').find((l) => l.includes('ERROR: Job failed')) ?? '';
    t.match(error, image, `the error names the image: ${error.trim()}`);
    t.match(error, /pull/i, 'and says the pull failed');
    t.notMatch(job.log, 'never:2');
    t.equal(job.checksumOk, true);
    t.same(await nothingLeft(), { clean: true, containers: [], processes: [] }, 'nothing left');
  });

  const WEB_IMAGE = 'runfleet-test/web:1';
  importBusyboxImage(dockerd, WEB_IMAGE, ['EXPOSE 80/tcp'], {
    'www/index.html': 'served by the web service\n',
  });

  t.test('a busybox httpd service reached by its alias', async (t) => {
    h.enqueue(3, {
      services: [{ name: WEB_IMAGE, alias: 'web', command: ['httpd', '-f', '-p', '80', '-h', '/www'] }],
      script: ['wget -qO- http://web/', 'echo "net:$CI_BUILD_NETWORK_NAME"'],
    });
    const job = await h.finished(3, 60_000);
    t.equal(job.state, 'success', 'the job succeeded', { log: job.log });
    t.match(job.log, 'Waiting for services to be up and running (timeout 3 seconds)...');
    t.match(job.log, 'served by the web service');
    t.match(job.log, /net:runfleet-job-3-\S+-network/);
    t.notMatch(job.log, 'probably didn');
    t.same(
      await nothingLeft(),
      { clean: true, containers: [], processes: [] },
      'service and network removed',
    );
  });

  t.test('a service whose port never opens: the warning, and the job goes on', async (t) => {
    h.enqueue(4, {
      services: [{ name: WEB_IMAGE, alias: 'silent', command: ['sleep', '600'] }],
      script: ['echo "script:$CI_JOB_ID"'],
    });
    const job = await h.finished(4, 60_000);
    t.equal(job.state, 'success', 'the job succeeded', { log: job.log });
    t.match(job.log, /\*\*\* WARNING:\S* Service runfleet-job-4-\S+ probably didn't start properly\./);
    t.match(job.log, /waiting for TCP connection to \S+ on \[80\]/);
    t.match(job.log, 'script:4');
    t.same(await nothingLeft(), { clean: true, containers: [], processes: [] });
  });

  t.test('$VAR in the image name, and /tmp kept from script to after_script', async (t) => {
    h.enqueue(5, {
      image: '${REPO}/busybox:$TAG',
      variables: { REPO: 'runfleet-test', TAG: '1' },
      script: ['echo "image=$CI_JOB_IMAGE"', 'echo "from-script-$CI_JOB_ID" > /tmp/state'],
      afterScript: ['echo "after:$(cat /tmp/state)"'],
    });
    const job = await h.finished(5, 60_000);
    t.equal(job.state, 'success', 'the job succeeded', { log: job.log });
    t.match(job.log, `image=${TEST_IMAGE}`);
    t.match(job.log, 'after:from-script-5');
    t.same(await nothingLeft(), { clean: true, containers: [], processes: [] });
  });

  if (requireOrSkip(t, 'docker-registry', 'htpasswd')) {
    const registry = await startRegistry(t, dockerd.dir);
    const image = registry.push(dockerd, TEST_IMAGE, 'private/busybox:1');
    t.test('a private image is pulled only with the credentials GitLab sends', async (t) => {
      // One after the other: the fleet's if-not-present would let job 6 use job 7's pull.
      h.enqueue(6, { image, script: ['echo "never:$CI_JOB_ID"'] });
      const denied = await h.finished(6, 60_000);
      h.enqueue(7, {
        image,
        credentials: [
          {
            type: 'registry',
            url: registry.address,
            username: registry.username,
            password: registry.password,
          },
        ],
        script: ['echo "private:$CI_JOB_ID"'],
      });
      const allowed = await h.finished(7, 60_000);
      t.equal(denied.failure_reason, 'image_pull_failure', 'without credentials', { log: denied.log });
      t.equal(allowed.state, 'success', 'with credentials', { log: allowed.log });
      t.match(allowed.log, 'Authenticating with credentials from job payload (GitLab Registry)');
      t.match(allowed.log, 'private:7');
      t.notMatch(denied.log + allowed.log, registry.password, 'the password is never logged');
      t.same(await nothingLeft(), { clean: true, containers: [], processes: [] });
    });
  }
}
