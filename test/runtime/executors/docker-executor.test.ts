/**
 * The docker executor against a real dockerd reached through a real sshd (stream-local
 * forwarding): a job in a busybox image (sources fetched on the host, no git in the image), a
 * missing image (`image_pull_failure`), containers removed afterwards, a cancel that kills the
 * container.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { KnownHostsFile } from '../../../src/runtime/connectors/known-hosts.js';
import { SshConnectorPool } from '../../../src/runtime/connectors/ssh-connector.js';
import { dockerThroughConnector, MANAGED_LABEL } from '../../../src/runtime/executors/docker-api.js';
import { DockerExecutor } from '../../../src/runtime/executors/docker-executor.js';
import { MemoryJobOutput } from '../../../src/runtime/executors/memory-output.js';
import { runStages, type RunStagesOptions } from '../../../src/runtime/executors/stage-runner.js';
import type { PullPolicy } from '../../../src/model/fleet.js';
import { makeJob, type JobFixtureOptions } from '../../fixtures/runtime/job.js';
import { startDockerd, TEST_IMAGE } from '../../helpers/topology/dockerd.js';
import { makeBareRepo } from '../../helpers/topology/git-repo.js';
import { waitFor } from '../../helpers/topology/processes.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startSshd } from '../../helpers/topology/sshd.js';

if (requireOrSkip(t, 'sshd', 'ssh-keygen', 'dockerd', 'docker', 'busybox', 'git')) {
  const state = mkdtempSync(join(tmpdir(), 'rf-dkx-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const repo = makeBareRepo(t, { 'README.md': 'hello from the repo\n' });
  const [dockerd, sshd] = await Promise.all([startDockerd(t), startSshd(t)]);
  const pool = new SshConnectorPool({
    knownHosts: new KnownHostsFile(join(state, 'known_hosts.json')),
    killGraceMs: 500,
  });
  t.teardown(() => pool.close());
  const connector = pool.get({
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    privateKey: sshd.privateKey,
  });
  const docker = dockerThroughConnector(connector, dockerd.socketPath);
  const managedContainers = async () =>
    (await docker.listContainers({ all: true, filters: { label: [`${MANAGED_LABEL}=true`] } })).length;

  const run = async (
    o: JobFixtureOptions,
    opts: RunStagesOptions = {},
    pullPolicy: PullPolicy[] = ['if-not-present'],
  ) => {
    const output = new MemoryJobOutput();
    const executor = new DockerExecutor({
      connector,
      socketPath: dockerd.socketPath,
      hostBuildsDir: join(state, 'builds'),
      defaultImage: TEST_IMAGE,
      pullPolicy,
    });
    const job = makeJob({ repoUrl: repo.url, sha: repo.sha, ref: repo.ref, ...o });
    const result = await runStages(job, executor, output, opts);
    return { result, log: output.text() };
  };

  t.test('the Docker API answers through the SSH tunnel', async (t) => {
    const info = (await docker.version()) as { ApiVersion?: string };
    t.ok(info.ApiVersion, `API ${info.ApiVersion}`);
  });

  t.test('success in a busybox image: sources from the host, scripts under sh', async (t) => {
    const { result, log } = await run({
      script: [
        'cat README.md',
        'echo "dir=$CI_PROJECT_DIR image=$CI_JOB_IMAGE"',
        'command -v git || echo no-git-here',
      ],
      afterScript: ['echo "after status=$CI_JOB_STATUS"'],
    });
    t.equal(result.state, 'success', log);
    t.match(log, 'hello from the repo\n');
    t.match(log, `dir=/builds/0/group/project image=${TEST_IMAGE}`);
    t.match(log, 'no-git-here', 'the job image has no git: get_sources ran on the host');
    t.match(log, 'after status=success');
    t.equal(await managedContainers(), 0, 'containers removed');
  });

  t.test('script failure keeps its exit code', async (t) => {
    const { result } = await run({ script: ['exit 42'] });
    t.match(result, { state: 'failed', failureReason: 'script_failure', exitCode: 42 });
    t.equal(await managedContainers(), 0);
  });

  t.test('a missing image that cannot be pulled is image_pull_failure naming the image', async (t) => {
    // A registry on a closed loopback port: the pull fails without leaving the machine.
    const image = '127.0.0.1:9/runfleet-test/missing:1';
    const { result, log } = await run({ image: { name: image }, script: ['echo never'] }, {}, ['always']);
    t.match(result, { state: 'failed', failureReason: 'image_pull_failure' });
    t.match(result.message, image);
    t.notMatch(log, 'never\n');
    const never = await run({ image: { name: 'runfleet-test/absent:1', pull_policy: ['never'] } });
    t.match(never.result, { failureReason: 'image_pull_failure', message: /runfleet-test\/absent:1/ });
    t.equal(await managedContainers(), 0);
  });

  t.test('cancel kills the container and removes it', async (t) => {
    const cancel = new AbortController();
    const running = run(
      { script: ['sleep 60'], afterScript: ['echo "after status=$CI_JOB_STATUS"'] },
      { cancel: cancel.signal },
    );
    const stepRunning = async () =>
      (await docker.listContainers({ filters: { label: ['io.runfleet.stage=step_script'] } })).length > 0;
    t.ok(await waitFor(stepRunning, 10_000), 'the step container runs');
    const started = Date.now();
    cancel.abort();
    const { result, log } = await running;
    t.ok(Date.now() - started < 10_000, 'stopped promptly');
    t.match(result, { status: 'canceled' });
    t.match(log, 'after status=canceled');
    t.equal(await managedContainers(), 0, 'no container left');
  });
}
