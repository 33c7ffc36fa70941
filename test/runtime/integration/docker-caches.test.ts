/**
 * Caches with the docker executor: the job runs in a busybox container, its cache is moved on the
 * instance host (the project directory is mounted into the container), so the image needs nothing
 * for caches. A static host keeps the cache on the instance (GitLab's non-distributed cache).
 */
import { rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import t from 'tap';
import { exampleJob } from '../../../src/devtools/coordinator/example-job.js';
import { remoteRunnerBuildsDir } from '../../../src/runtime/executor-factory.js';
import { startHarness } from './harness.js';
import { startDockerd, TEST_IMAGE } from '../../helpers/topology/dockerd.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startSshd } from '../../helpers/topology/sshd.js';

const FLEET = 'it-docker-cache';

if (requireOrSkip(t, 'sshd', 'ssh-keygen', 'dockerd', 'docker', 'busybox')) {
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
      'capacity_per_instance: 1',
      'max_instances: 1',
      `connector: { username: root, key_path: ${join(sshd.dir, 'userkey')} }`,
      'policy:',
      '  - idle_count: 1',
      '    idle_time: 10m',
    ].join('\n'),
  });
  await h.readyInstances(1);
  const project = `dc-${process.pid}-${randomBytes(3).toString('hex')}`;
  const builds = `${remoteRunnerBuildsDir(h.shortToken)}/0/acme/${project}`;
  t.teardown(() => rmSync(`/tmp/runfleet-cache/acme/${project}`, { recursive: true, force: true }));
  t.teardown(() => rmSync(builds, { recursive: true, force: true }));

  t.test('a cache written in one container is restored into the next job’s container', async (t) => {
    const cache = [{ key: 'deps', paths: ['vendor/'] }];
    const run = async (id: number, script: string[]) => {
      h.coordinator.enqueue({
        ...exampleJob(id, { projectName: project, serverUrl: h.coordinator.url, script }),
        cache,
      });
      return h.finished(id, 60_000);
    };
    const first = await run(1, ['mkdir -p vendor', 'echo "made in $CI_JOB_IMAGE" > vendor/x']);
    t.equal(first.state, 'success', first.log);
    // The build directory goes, as on a new instance: what the next job finds came from the cache.
    rmSync(builds, { recursive: true, force: true });
    t.match(first.log, 'Creating cache deps...');
    t.match(first.log, 'vendor: found 2 matching artifact files and directories');
    const second = await run(2, ['cat vendor/x']);
    t.equal(second.state, 'success', second.log);
    t.match(second.log, 'Successfully extracted cache');
    t.match(second.log, `made in ${TEST_IMAGE}`);
  });
}
