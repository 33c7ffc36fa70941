/**
 * Which artifacts go up in which upload stage (each entry's `when`), which dependencies are
 * downloaded (only those with an archive), and gitlab-runner's file names per format.
 */
import t from 'tap';
import {
  artifactFilename,
  artifactsToUpload,
  dependenciesToDownload,
} from '../../../src/runtime/executors/artifact-stages.js';
import { exampleJob } from '../../../src/devtools/coordinator/example-job.js';

t.test('each artifact goes up in the stage its when names', async (t) => {
  const job = exampleJob(1, {
    artifacts: [
      { name: 'default-when', paths: ['a'] },
      { name: 'success', paths: ['a'], when: 'on_success' },
      { name: 'failure', paths: ['a'], when: 'on_failure' },
      { name: 'always', paths: ['a'], when: 'always' },
      { name: 'nothing', paths: [], when: 'always' },
      { name: 'untracked-only', untracked: true },
    ],
  });
  const names = (succeeded: boolean) => artifactsToUpload(job, succeeded).map((a) => a.name);
  t.same(names(true), ['default-when', 'success', 'always', 'untracked-only']);
  t.same(names(false), ['failure', 'always']);
});

t.test('only dependencies with an archive are downloaded', async (t) => {
  const job = exampleJob(2, {
    dependencies: [
      { id: 1, name: 'with', artifacts_file: { filename: 'artifacts.zip', size: 3 } },
      { id: 2, name: 'without' },
      { id: 3, name: 'null', artifacts_file: null },
    ],
  });
  t.same(
    dependenciesToDownload(job).map((d) => d.name),
    ['with'],
  );
});

t.test('file names as gitlab-runner makes them', async (t) => {
  t.equal(artifactFilename('', 'zip'), 'default.zip');
  t.equal(artifactFilename('build', 'zip'), 'build.zip');
  t.equal(artifactFilename('dir/junit.xml', 'gzip'), 'junit.xml.gz');
  t.equal(artifactFilename('metrics.txt', 'raw'), 'metrics.txt');
  t.equal(artifactFilename('.', 'gzip'), 'default.gz');
});
