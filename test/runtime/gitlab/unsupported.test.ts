import t from 'tap';
import { unsupportedJobReason, unsupportedJobWarnings } from '../../../src/runtime/gitlab/refuse.js';
import { makeJob } from '../../fixtures/runtime/job.js';

t.test('what runfleet does not do yet is said in the job log, not silently skipped', async (t) => {
  t.same(unsupportedJobWarnings(makeJob()), [], 'a plain job has nothing to warn about');
  const job = makeJob();
  job.artifacts = [{ name: 'build', paths: ['dist/'] }];
  job.cache = [{ key: 'deps', paths: ['node_modules/'] }];
  job.dependencies = [{ id: 1, name: 'build', artifacts_file: { filename: 'artifacts.zip', size: 10 } }];
  job.services = [{ name: 'postgres:16' }];
  const warnings = unsupportedJobWarnings(job);
  t.equal(warnings.length, 1, 'artifacts, dependencies and caches are implemented: no warning for them');
  t.match(warnings.join('\n'), /services/);

  const empty = makeJob();
  empty.artifacts = [{ name: 'x', paths: [] }];
  empty.cache = [];
  empty.dependencies = [{ id: 2, name: 'lint' }];
  t.same(
    unsupportedJobWarnings(empty),
    [],
    'empty artifact and cache lists and dependencies without files are fine',
  );
  t.equal(unsupportedJobReason(job), undefined, 'these jobs still run');
  t.notMatch(
    unsupportedJobWarnings(job, 'docker').join('\n'),
    /services/,
    'the docker executor runs services: no warning',
  );
});
