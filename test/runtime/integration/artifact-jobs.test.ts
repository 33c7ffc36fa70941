/**
 * Artifacts and dependencies through the real manager: a static fleet of two real sshd hosts,
 * the instance executor, and the coordinator as strict as GitLab (runner_unsupported for missing
 * features, token checks, a size limit, downloads through a 302 to an object-storage server).
 * A build job uploads an archive (globs, exclude, untracked), a junit report (`when: always`) and
 * a dotenv report; a test job on the OTHER instance downloads the archive and sees the dotenv
 * variable. Then `when: on_failure`, an archive over the limit (413) and a download 404.
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startHarness } from './harness.js';
import { makeBareRepo } from '../../helpers/topology/git-repo.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startSshd } from '../../helpers/topology/sshd.js';

const FLEET = 'it-artifacts';

if (requireOrSkip(t, 'sshd', 'ssh-keygen', 'git')) {
  const [a, b] = await Promise.all([startSshd(t), startSshd(t)]);
  // Both sshd hosts accept the first one's key (the fleet has one key_path).
  copyFileSync(join(a!.dir, 'userkey.pub'), join(b!.dir, 'authorized_keys'));
  const h = await startHarness(t, {
    fleetName: FLEET,
    coordinator: { objectStorage: true, maxArtifactBytes: 1024 * 1024 },
    fleetYaml: [
      `name: ${FLEET}`,
      `provider: { type: static, hosts: ['${a!.host}:${a!.port}', '${b!.host}:${b!.port}'] }`,
      'executor: instance',
      'capacity_per_instance: 1',
      'max_instances: 2',
      `connector: { username: root, key_path: ${join(a!.dir, 'userkey')} }`,
      'policy:',
      '  - idle_count: 2',
      '    idle_time: 10m',
    ].join('\n'),
  });
  await h.readyInstances(2);

  const flag = (name: string) => join(h.dir, `flag-${name}`);
  const holder = (name: string) => [
    `echo "holding ${name}"`,
    `while [ ! -e ${flag(name)} ]; do sleep 0.1; done`,
  ];
  const instanceOf = (log: string) => /Preparing the instance executor on (\S+ \S+)/.exec(log)?.[1];

  t.test('build → test on another instance: archive, junit report, dotenv, through a 302', async (t) => {
    const repo = makeBareRepo(t, { 'README.md': 'tracked\n' });
    h.enqueue(101, {
      name: 'build',
      repoUrl: repo.url,
      sha: repo.sha,
      ref: repo.ref,
      script: [
        'mkdir -p dist/sub dist/tmp',
        'echo app > dist/app.js',
        'echo lib > dist/sub/lib.js',
        'echo scratch > dist/tmp/x.o',
        'echo notes > notes.txt',
        `echo '<testsuites><testsuite name="unit" tests="1"/></testsuites>' > junit.xml`,
        'echo BUILD_VERSION=4.5.6 > build.env',
        `printf '[]' > gl-code-quality-report.json`,
      ],
      variables: { ARTIFACT_NAME: 'build-output' },
      artifacts: [
        {
          name: '$ARTIFACT_NAME',
          paths: ['dist/**/*.js', 'dist/sub/'],
          exclude: ['dist/tmp/**'],
          untracked: true,
          when: 'on_success',
          expire_in: '1 week',
          artifact_type: 'archive',
          artifact_format: 'zip',
        },
        {
          name: 'junit.xml',
          paths: ['junit.xml'],
          when: 'always',
          artifact_type: 'junit',
          artifact_format: 'gzip',
        },
        { paths: ['build.env'], artifact_type: 'dotenv', artifact_format: 'gzip', when: 'on_success' },
        {
          name: 'gl-code-quality-report.json',
          paths: ['gl-code-quality-report.json'],
          artifact_type: 'codequality',
          artifact_format: 'raw',
        },
      ],
    });
    h.enqueue(102, { name: 'holder-a', script: holder('a') });
    const build = await h.finished(101, 60_000);
    t.equal(build.state, 'success', build.log);
    t.match(build.log, 'Uploading artifacts for successful job');
    t.match(build.log, /dist\/\*\*\/\*\.js: found \d+ matching artifact files and directories/);
    t.match(build.log, 'dist/tmp/**: excluded');
    t.match(build.log, /untracked: found \d+ files/);
    t.match(build.log, 'Uploading artifacts as "archive" to coordinator... 201 Created');
    t.match(build.log, 'Uploading artifacts as "junit" to coordinator... 201 Created');
    t.same(
      build.artifacts.map((x) => [x.filename, x.query]),
      [
        ['build-output.zip', { artifact_format: 'zip', artifact_type: 'archive', expire_in: '1 week' }],
        ['junit.xml.gz', { artifact_format: 'gzip', artifact_type: 'junit' }],
        ['default.gz', { artifact_format: 'gzip', artifact_type: 'dotenv' }],
        ['gl-code-quality-report.json', { artifact_format: 'raw', artifact_type: 'codequality' }],
      ],
    );
    t.equal(build.artifacts.at(-1)?.size, 2, 'a raw report is the file as it is');
    t.same(build.dotenv, { BUILD_VERSION: '4.5.6' });
    const buildOn = instanceOf(build.log);

    // The build's instance gets a holder of its own; when holder A ends, its instance (the other
    // one) is the only free slot for the test job.
    h.enqueue(103, { name: 'holder-b', script: holder('b') });
    await h.logShows(103, 'holding b', 30_000);
    await h.logShows(102, 'holding a', 30_000);
    h.enqueue(104, {
      name: 'test',
      dependencies: [{ id: 101, name: 'build' }],
      script: [
        'cat dist/app.js dist/sub/lib.js',
        'test ! -e dist/tmp/x.o && echo "excluded: gone"',
        'test ! -e README.md && echo "tracked: not in the archive"',
        'cat notes.txt',
        'echo "version=$BUILD_VERSION"',
      ],
    });
    writeFileSync(flag('a'), '');
    const test = await h.finished(104, 60_000);
    writeFileSync(flag('b'), '');
    t.equal(test.state, 'success', test.log);
    t.not(instanceOf(test.log), buildOn, `another instance (${buildOn} → ${instanceOf(test.log)})`);
    t.match(test.log, 'Downloading artifacts for build (101)...');
    t.match(test.log, 'Downloading artifacts from coordinator... ok');
    t.match(test.log, / app\n/);
    t.match(test.log, / lib\n/);
    t.match(test.log, 'excluded: gone');
    t.match(test.log, 'tracked: not in the archive');
    t.match(test.log, 'notes');
    t.match(test.log, 'version=4.5.6', 'the dotenv report reached the dependent job');
    const fromStorage = h.coordinator.objectStorageRequests();
    t.equal(fromStorage.length, 1, 'the archive came from object storage');
    t.notOk(fromStorage[0]?.headers['job-token'], 'no job token was sent to object storage');
    t.notMatch(JSON.stringify(fromStorage), /glcbt-/, 'not anywhere in the request');
    await h.finished(102);
    await h.finished(103);
  });

  t.test('when: on_failure uploads only after a failure, always in both; on_success not', async (t) => {
    h.enqueue(111, {
      script: ['echo oops > fail.log', 'echo fine > ok.txt', 'echo "<testsuites/>" > junit.xml', 'exit 3'],
      artifacts: [
        { name: 'failure', paths: ['fail.log'], when: 'on_failure' },
        { name: 'success', paths: ['ok.txt'], when: 'on_success' },
        {
          name: 'junit',
          paths: ['junit.xml'],
          when: 'always',
          artifact_type: 'junit',
          artifact_format: 'gzip',
        },
      ],
    });
    const job = await h.finished(111, 30_000);
    t.equal(job.state, 'failed');
    t.equal(job.failure_reason, 'script_failure');
    t.equal(job.exit_code, 3, 'the script failure comes first');
    t.match(job.log, 'Uploading artifacts for failed job');
    t.same(
      job.artifacts.map((x) => x.filename),
      ['failure.zip', 'junit.gz'],
    );
  });

  t.test(
    'an archive over the limit fails the job with 413; a missing dependency archive with 404',
    async (t) => {
      h.enqueue(121, {
        script: ['head -c 3000000 /dev/urandom > big.bin'],
        artifacts: [{ name: 'big', paths: ['big.bin'] }],
      });
      const big = await h.finished(121, 30_000);
      t.equal(big.state, 'failed', big.log);
      t.equal(big.failure_reason, 'script_failure');
      t.match(big.log, /Uploading artifacts as "archive" to coordinator\.\.\. too large archive/);
      t.same(big.artifacts, [], 'nothing stored');

      h.enqueue(122, { name: 'ghost', script: ['true'] });
      await h.finished(122);
      h.enqueue(123, {
        dependencies: [{ id: 122, name: 'ghost', artifacts_file: { filename: 'artifacts.zip', size: 10 } }],
        script: ['echo "should not run"'],
        afterScript: ['echo "after_script ran"'],
      });
      const missing = await h.finished(123, 30_000);
      t.equal(missing.state, 'failed');
      t.equal(missing.failure_reason, 'script_failure');
      t.match(missing.log, 'cannot download the artifacts of ghost (job 122): 404 Not Found');
      t.notMatch(missing.log, /\$ echo "should not run"/, 'no step ran');
      t.notMatch(
        missing.log,
        /\$ echo "after_script ran"/,
        'nor after_script (the steps were never reached)',
      );
    },
  );

  t.test(
    'a runner that lacks a feature gets such jobs dropped as runner_unsupported (GitLab does so)',
    async (t) => {
      // runfleet advertises the artifact features, so these jobs run; the coordinator would drop them otherwise.
      const info = h.coordinator.runners()[0]?.info as { features: Record<string, boolean> };
      for (const f of [
        'artifacts',
        'upload_multiple_artifacts',
        'upload_raw_artifacts',
        'artifacts_exclude',
      ]) {
        t.equal(info.features[f], true, f);
      }
    },
  );
}
