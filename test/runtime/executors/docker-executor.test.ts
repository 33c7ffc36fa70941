/**
 * The docker executor against a real dockerd reached through a real sshd (stream-local
 * forwarding): a job in a busybox image (sources fetched on the host, no git in the image), a
 * missing image (`image_pull_failure`), containers removed afterwards, a cancel that kills the
 * container; one build container for all user stages; services on the build network (aliases,
 * variables, command, the wait and its warning, CI_DEBUG_SERVICES); `$VAR` image names;
 * executor_opts; private images from a real registry with each source of credentials.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { KnownHostsFile } from '../../../src/runtime/connectors/known-hosts.js';
import { SshConnectorPool } from '../../../src/runtime/connectors/ssh-connector.js';
import { dockerThroughConnector, MANAGED_LABEL } from '../../../src/runtime/executors/docker-api.js';
import {
  DockerExecutor,
  type DockerExecutorOptions,
} from '../../../src/runtime/executors/docker-executor.js';
import { MemoryJobOutput } from '../../../src/runtime/executors/memory-output.js';
import { runStages, type RunStagesOptions } from '../../../src/runtime/executors/stage-runner.js';
import type { PullPolicy } from '../../../src/model/fleet.js';
import { makeJob, type JobFixtureOptions } from '../../fixtures/runtime/job.js';
import { importBusyboxImage, startDockerd, TEST_IMAGE } from '../../helpers/topology/dockerd.js';
import { startRegistry } from '../../helpers/topology/registry.js';
import { makeBareRepo } from '../../helpers/topology/git-repo.js';
import { processesMatching, waitFor } from '../../helpers/topology/processes.js';
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
  /** Containers and networks the executor made: none may outlive a job. */
  const managedContainers = async () =>
    (await docker.listContainers({ all: true, filters: { label: [`${MANAGED_LABEL}=true`] } })).length +
    (await docker.listNetworks({ filters: { label: [`${MANAGED_LABEL}=true`] } })).length;

  const run = async (
    o: JobFixtureOptions,
    opts: RunStagesOptions = {},
    pullPolicy: PullPolicy[] = ['if-not-present'],
    executorOpts: Partial<DockerExecutorOptions> = {},
  ) => {
    const output = new MemoryJobOutput();
    const executor = new DockerExecutor({
      connector,
      socketPath: dockerd.socketPath,
      hostBuildsDir: join(state, 'builds'),
      defaultImage: TEST_IMAGE,
      pullPolicy,
      ...executorOpts,
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
    // Unique to this process: the host's process list also shows the containers of this file
    // running at the same time elsewhere (CI runs it on three Node.js versions at once), and a
    // plain `sleep 61` of theirs let this test cancel before its step started.
    const step = `sleep 61.${process.pid}`;
    const running = run(
      {
        script: [step, 'echo "step ran to its end"'],
        afterScript: ['echo "after status=$CI_JOB_STATUS"'],
      },
      { cancel: cancel.signal },
    );
    // The build container runs from prepare_script on: wait for the step's own process (a bound,
    // not a duration: at load average ~25 it had not started after 10 s).
    const stepRunning = () => processesMatching(step).length > 0;
    t.ok(await waitFor(stepRunning, 60_000), 'the step runs in the build container');
    cancel.abort();
    const { result, log } = await running;
    // Killed, not waited for: the step never reached its next command.
    t.notMatch(log, 'step ran to its end', 'the step was stopped');
    t.equal(processesMatching(step).length, 0, "nothing of the step's process is left");
    t.match(result, { status: 'canceled' });
    t.match(log, 'after status=canceled');
    t.equal(await managedContainers(), 0, 'no container left');
  });

  // An image with a web root and port 80 exposed, as a service image would declare it.
  const WEB_IMAGE = 'runfleet-test/web:1';
  importBusyboxImage(dockerd, WEB_IMAGE, ['EXPOSE 80/tcp'], { 'www/index.html': 'hello from the service\n' });
  const webService = {
    name: '$WEB_NAMESPACE/web:1',
    alias: 'web, db',
    command: [
      'sh',
      '-c',
      'echo "greeting=$GREETING job=$CI_JOB_ID" > /www/env.txt; echo service-up; exec httpd -f -p 80 -h /www',
    ],
    variables: [{ key: 'GREETING', value: 'hi-$CI_JOB_ID' }],
  };

  t.test('one build container: state outside the project dir survives into after_script', async (t) => {
    const { result, log } = await run({
      script: ['echo kept-in-tmp > /tmp/state', 'echo "$$" > /tmp/pid-script'],
      afterScript: ['cat /tmp/state', 'echo "after:$CI_JOB_STATUS"'],
    });
    t.equal(result.state, 'success', log);
    t.match(log, /\$ cat \/tmp\/state\nkept-in-tmp\n[\s\S]*after:success/);
    t.equal(await managedContainers(), 0, 'container and network removed');
  });

  t.test('a service on the build network, reached by its aliases, with its variables', async (t) => {
    const { result, log } = await run({
      services: [webService],
      variables: [
        { key: 'CI_DEBUG_SERVICES', value: 'true', public: true },
        { key: 'WEB_NAMESPACE', value: 'runfleet-test', public: true },
      ],
      script: [
        'wget -qO- http://web/',
        'wget -qO- http://db/env.txt',
        'wget -qO- http://runfleet-test__web/ && wget -qO- http://runfleet-test-web/ && echo default-aliases-ok',
        'echo "network=$CI_BUILD_NETWORK_NAME"',
      ],
    });
    t.equal(result.state, 'success', log);
    t.match(log, 'Starting service runfleet-test/web:1 ...');
    t.match(log, 'Waiting for services to be up and running (timeout 30 seconds)...');
    t.notMatch(log, "probably didn't start properly");
    t.match(log, 'hello from the service\n');
    t.match(log, 'greeting=hi-1001 job=1001', 'service variables expanded, job variables passed');
    t.match(log, 'default-aliases-ok');
    t.match(log, /network=runfleet-job-1001-[0-9a-f]+-network/);
    t.match(
      log,
      /\[service:runfleet-test__web-runfleet-test-web-web-db\] \S+ service-up/,
      'CI_DEBUG_SERVICES',
    );
    t.equal(await managedContainers(), 0, 'service, build container and network removed');
  });

  t.test('a service whose port never opens: the warning, then the job goes on', async (t) => {
    const { result, log } = await run(
      {
        services: [
          {
            name: TEST_IMAGE,
            alias: 'quiet',
            command: ['sh', '-c', 'echo "quiet service log line"; exec sleep 600'],
            variables: [{ key: 'HEALTHCHECK_TCP_PORT', value: '5432' }],
          },
        ],
        script: ['echo "script ran"'],
      },
      {},
      ['if-not-present'],
      { waitForServicesTimeout: 2 },
    );
    t.equal(result.state, 'success', log);
    t.match(log, 'Waiting for services to be up and running (timeout 2 seconds)...');
    t.match(
      log,
      /\*\*\* WARNING:\S* Service runfleet-job-1001-[0-9a-f]+-runfleet-test__busybox-0 probably didn't start properly\./,
    );
    t.match(log, /Health check error:\nservice "\S+-wait-for-service" timeout/);
    t.match(log, /Health check container logs:\nwaiting for TCP connection to \S+ on \[5432\]/);
    t.match(log, /Service container logs:\n\S+ quiet service log line/);
    t.match(log, 'script ran');
    t.equal(await managedContainers(), 0);
  });

  t.test('what a crashed job left in the slot is swept by the next job in it', async (t) => {
    const labels = {
      [MANAGED_LABEL]: 'true',
      'io.runfleet.job-id': '999',
      'io.runfleet.instance': 'i-1',
      'io.runfleet.slot': '0',
    };
    await docker.createNetwork({ Name: 'runfleet-job-999-left-network', Labels: labels });
    await docker.createContainer({ Image: TEST_IMAGE, Cmd: ['sleep', '600'], Labels: labels });
    const others = [
      { ...labels, 'io.runfleet.slot': '1' },
      { ...labels, 'io.runfleet.instance': 'i-2' },
    ];
    const kept = await Promise.all(
      others.map((Labels) => docker.createContainer({ Image: TEST_IMAGE, Cmd: ['sleep', '600'], Labels })),
    );
    const { result, log } = await run({ script: ['echo ok'] }, {}, ['if-not-present'], { instanceId: 'i-1' });
    t.equal(result.state, 'success', log);
    t.equal(await managedContainers(), 2, "only other slots' and instances' containers are left");
    await Promise.all(kept.map((c) => c.remove({ force: true })));
  });

  t.test('$VAR in the image name is expanded with the job variables', async (t) => {
    const { result, log } = await run({
      image: { name: '$IMAGE_REPO/busybox:${IMAGE_TAG}' },
      variables: [
        { key: 'IMAGE_REPO', value: 'runfleet-test', public: true },
        { key: 'IMAGE_TAG', value: '1', public: true },
      ],
      script: ['echo "image=$CI_JOB_IMAGE"'],
    });
    t.equal(result.state, 'success', log);
    t.match(log, `Using docker executor with image ${TEST_IMAGE}`);
    t.match(log, `image=${TEST_IMAGE}`);
  });

  t.test(
    'executor_opts: docker.user runs the build as that user, who can write; unknown keys are refused',
    async (t) => {
      const { result, log } = await run({
        image: { name: TEST_IMAGE, executor_opts: { docker: { user: 4321 } } },
        script: [
          'echo "uid=$(id -u)"',
          'echo mine > written-by-user.txt',
          'echo "FROM_USER=1" >> "$GITLAB_ENV"',
        ],
        afterScript: ['cat written-by-user.txt', 'echo "env:$FROM_USER"'],
      });
      t.equal(result.state, 'success', log);
      t.match(log, 'uid=4321');
      t.match(
        log,
        /mine\n[\s\S]*env:1/,
        'the sources and GITLAB_ENV are writable for that user (umask 0000)',
      );
      const bad = await run({
        image: { name: TEST_IMAGE, executor_opts: { docker: { gpus: 'all' } } as never },
      });
      t.match(bad.result, { state: 'failed', failureReason: 'runner_configuration_error' });
      t.match(bad.result.message, 'docker.gpus');
      t.equal(await managedContainers(), 0);
    },
  );

  if (requireOrSkip(t, 'docker-registry', 'htpasswd')) {
    const registry = await startRegistry(t, state);
    const image = registry.push(dockerd, TEST_IMAGE, 'private/busybox:1');
    const auth = Buffer.from(`${registry.username}:${registry.password}`).toString('base64');
    const authConfig = JSON.stringify({ auths: { [registry.address]: { auth } } });
    const job = (extra: JobFixtureOptions = {}): JobFixtureOptions => ({
      image: { name: image, pull_policy: ['always'], executor_opts: { docker: { platform: 'linux/amd64' } } },
      script: ['echo "private image ran"'],
      ...extra,
    });
    const noSecret = (t: Test, log: string) =>
      t.notMatch(log, registry.password, 'the password never reaches the log');

    t.test('a private image without credentials fails as image_pull_failure', async (t) => {
      const { result, log } = await run(job());
      t.match(result, { state: 'failed', failureReason: 'image_pull_failure' });
      t.notMatch(log, 'private image ran');
    });

    t.test('credentials from the job payload (credentials[])', async (t) => {
      const { result, log } = await run(
        job({
          credentials: [
            {
              type: 'registry',
              url: registry.address,
              username: registry.username,
              password: registry.password,
            },
          ],
        }),
      );
      t.equal(result.state, 'success', log);
      t.match(log, 'Authenticating with credentials from job payload (GitLab Registry)');
      t.match(log, `Pulling docker image ${image} for platform linux/amd64`);
      t.match(log, 'private image ran');
      noSecret(t, log);
    });

    t.test('credentials from a DOCKER_AUTH_CONFIG job variable, for a service too', async (t) => {
      const { result, log } = await run(
        job({
          variables: [{ key: 'DOCKER_AUTH_CONFIG', value: authConfig, public: false, masked: true }],
          services: [{ name: image, alias: 'private', command: ['sleep', '600'] }],
        }),
        {},
        ['always'],
        { waitForServicesTimeout: -1 },
      );
      t.equal(result.state, 'success', log);
      t.match(log, 'Authenticating with credentials from $DOCKER_AUTH_CONFIG');
      t.match(log, 'Starting service 127.0.0.1');
      t.notMatch(log, 'Waiting for services', '-1 does not wait');
      noSecret(t, log);
      t.equal(await managedContainers(), 0);
    });

    t.test("credentials from the fleet's auth_config and its docker config file", async (t) => {
      process.env.RF_TEST_DOCKER_AUTH = authConfig;
      t.teardown(() => delete process.env.RF_TEST_DOCKER_AUTH);
      const fromEnv = await run(job(), {}, ['always'], { authConfig: { env: 'RF_TEST_DOCKER_AUTH' } });
      t.equal(fromEnv.result.state, 'success', fromEnv.log);
      t.match(
        fromEnv.log,
        'Authenticating with credentials from $DOCKER_AUTH_CONFIG (fleet docker.auth_config)',
      );
      const file = join(state, 'docker-config.json');
      writeFileSync(file, authConfig);
      const fromFile = await run(job(), {}, ['always'], { configFile: file });
      t.equal(fromFile.result.state, 'success', fromFile.log);
      t.match(fromFile.log, `Authenticating with credentials from ${file}`);
      const broken = await run(job(), {}, ['always'], { authConfig: { env: 'RF_TEST_UNSET_VARIABLE' } });
      t.match(broken.result, { failureReason: 'image_pull_failure' });
      t.match(broken.log, "WARNING: Failed to resolve credentials from the fleet's docker.auth_config");
      noSecret(t, fromEnv.log + fromFile.log + broken.log);
    });
  }
}
