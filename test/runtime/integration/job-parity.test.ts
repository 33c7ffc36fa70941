/**
 * Jobs behave as on gitlab-runner, through the real manager, a real sshd host and real git: a
 * repository with nested submodules and a git-lfs file (Debian's git-lfs, `file://`), GITLAB_ENV
 * across stages, FF_* flags exported, and the job log's per-line timestamps parsed back.
 */
import t from 'tap';
import { startHarness, staticFleetYaml } from './harness.js';
import { FILE_SUBMODULES_ENV, makeLfsRepo, makeRepoWithSubmodules } from '../../helpers/topology/git-repo.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startSshd } from '../../helpers/topology/sshd.js';
import { parseTimestampedLine } from '../../../src/runtime/gitlab/timestamper.js';

const FLEET = 'it-parity';

if (requireOrSkip(t, 'sshd', 'ssh-keygen', 'git')) {
  const sshd = await startSshd(t);
  const h = await startHarness(t, { fleetName: FLEET, fleetYaml: staticFleetYaml(FLEET, sshd, 2) });
  await h.readyInstances(1);

  t.test('submodules (recursive) are checked out on the instance', async (t) => {
    const repo = makeRepoWithSubmodules(t);
    h.enqueue(1, {
      repoUrl: repo.url,
      sha: repo.sha,
      ref: repo.ref,
      variables: { ...FILE_SUBMODULES_ENV, GIT_SUBMODULE_STRATEGY: 'recursive' },
      script: ['cat sub/sub.txt other/other.txt sub/nested/nested.txt'],
    });
    const job = await h.finished(1);
    t.equal(job.state, 'success', job.log);
    t.match(job.log, 'Updating/initializing submodules recursively with git depth set to 20...');
    t.match(job.log, /sub content\n[\s\S]*other content\n[\s\S]*nested content\n/);
  });

  t.test('an LFS-tracked file holds its content, not the pointer', async (t) => {
    if (!requireOrSkip(t, 'git-lfs')) return;
    const content = 'lfs object served over file://\n';
    const repo = makeLfsRepo(t, content);
    h.enqueue(2, { repoUrl: repo.url, sha: repo.sha, ref: repo.ref, script: ['cat big.bin'] });
    const job = await h.finished(2);
    t.equal(job.state, 'success', job.log);
    t.match(job.log, content);
    t.notMatch(job.log, 'git-lfs.github.com/spec', 'no pointer file');
  });

  t.test('GITLAB_ENV: set in script, seen by after_script; FF flags exported', async (t) => {
    h.enqueue(3, {
      script: ['echo "CARRIED=from-script" >> "$GITLAB_ENV"', 'echo "ff=$FF_TIMESTAMPS"'],
      afterScript: ['echo "after sees $CARRIED"'],
    });
    const job = await h.finished(3);
    t.equal(job.state, 'success', job.log);
    t.match(job.log, 'after sees from-script');
    t.match(job.log, 'ff=true');
  });

  t.test(
    'every line of the log carries the timestamp prefix; FF_TIMESTAMPS=false turns it off',
    async (t) => {
      h.enqueue(4, { script: ['echo "out:$CI_JOB_ID"', 'echo "err:$CI_JOB_ID" >&2'] });
      const job = await h.finished(4);
      t.equal(job.state, 'success', job.log);
      const lines = job.log.split('\n').filter(Boolean);
      const parsed = lines.map(parseTimestampedLine);
      t.same(
        lines.filter((_, i) => !parsed[i]),
        [],
        'no line without a prefix',
      );
      const texts = parsed.map((p) => `${p!.stream}${p!.type}:${p!.text}`);
      t.ok(texts.includes('1O:out:4'), 'job stdout is stream 01, O');
      t.ok(texts.includes('1E:err:4'), 'job stderr is stream 01, E');
      t.ok(
        texts.some(
          (l) => l.startsWith('0O:') && l.includes('Executing "step_script" stage of the job script'),
        ),
        "runfleet's own lines are stream 00",
      );
      const times = parsed.map((p) => p!.time.getTime());
      t.ok(
        times.every((x, i) => i === 0 || x >= times[i - 1]!),
        'times never go backwards',
      );
      // The stamps come from the runtime's clock, which this harness runs 100× fast: no wall-clock check.

      h.enqueue(5, { variables: { FF_TIMESTAMPS: 'false' }, script: ['echo "plain:$CI_JOB_ID"'] });
      const plain = await h.finished(5);
      t.match(plain.log, /\nplain:5\n/);
      t.notOk(
        plain.log.split('\n').some((l) => parseTimestampedLine(l)),
        'no prefix anywhere',
      );
    },
  );
}
