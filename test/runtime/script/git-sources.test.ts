/**
 * get_sources against real git repositories on disk (`file://`), its scripts run by the real
 * shell: submodules (normal, recursive, paths, depth), LFS objects pulled with Debian's git-lfs,
 * GIT_CHECKOUT, SHA-256 repositories, fetch flags, the get_sources hooks rule, the worktree clear
 * of a retry, and GITLAB_ENV across stages. The log lines are GitLab Runner's.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { JobPayload, JobVariable } from '../../../src/runtime/gitlab/job.js';
import { gitSettings, parseGoBool, parseGoDuration } from '../../../src/runtime/script/build-settings.js';
import { jobLayout, type JobLayout } from '../../../src/runtime/script/layout.js';
import { buildStageScript, stageHasWork, type StageName } from '../../../src/runtime/script/stage-script.js';
import { makeJob } from '../../fixtures/runtime/job.js';
import {
  FILE_SUBMODULES_ENV,
  makeBareRepo,
  makeLfsRepo,
  makeRepoWithSubmodules,
  makeSha256Repo,
} from '../../helpers/topology/git-repo.js';
import { findProgram, requireOrSkip } from '../../helpers/topology/require-or-skip.js';

const dir = mkdtempSync(join(tmpdir(), 'rf-gitsrc-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let slot = 0;

const fileSubmoduleVars: JobVariable[] = Object.entries(FILE_SUBMODULES_ENV).map(([key, value]) => ({
  key,
  value,
}));

interface Run {
  status: number | null;
  out: string;
  layout: JobLayout;
}

/** Runs `stages` of `job` in order under /bin/sh, as the instance executor would; stops at a failure. */
function runStages(job: JobPayload, stages: StageName[], layout?: JobLayout, attempt = 1): Run {
  const l = layout ?? jobLayout(job, join(dir, 'builds'), slot++);
  let out = '';
  let status: number | null = 0;
  for (const stage of stages) {
    const text = buildStageScript(job, stage, {
      layout: l,
      concurrentId: 0,
      extra: [],
      jobStatus: 'running',
      getSourcesAttempt: attempt,
    });
    const r = spawnSync('/bin/sh', ['-s'], {
      input: text,
      encoding: 'utf8',
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: dir },
    });
    out += r.stdout + r.stderr;
    status = r.status;
    if (status !== 0) break;
  }
  return { status, out, layout: l };
}

function repoJob(
  repo: { url: string; sha: string; ref: string },
  vars: JobVariable[] = [],
  script?: string[],
) {
  const job = makeJob({ repoUrl: repo.url, sha: repo.sha, ref: repo.ref, variables: vars, script, depth: 0 });
  job.git_info.refspecs = ['+refs/heads/*:refs/remotes/origin/*'];
  return job;
}

const read = (l: JobLayout, f: string) => readFileSync(join(l.projectDir, f), 'utf8');

if (requireOrSkip(t, 'git')) {
  t.test('submodules: none by default, normal for the first level, recursive for all', async (t) => {
    const repo = makeRepoWithSubmodules(t);
    const none = runStages(repoJob(repo, fileSubmoduleVars), ['get_sources']);
    t.equal(none.status, 0, none.out);
    t.match(none.out, 'Skipping Git submodules setup');
    t.notOk(existsSync(join(none.layout.projectDir, 'sub', 'sub.txt')), 'no submodule without a strategy');

    const normal = runStages(
      repoJob(repo, [...fileSubmoduleVars, { key: 'GIT_SUBMODULE_STRATEGY', value: 'normal' }]),
      ['get_sources'],
    );
    t.equal(normal.status, 0, normal.out);
    t.match(normal.out, 'Updating/initializing submodules...');
    t.match(normal.out, 'Updated submodules');
    t.equal(read(normal.layout, 'sub/sub.txt'), 'sub content\n');
    t.equal(read(normal.layout, 'other/other.txt'), 'other content\n');
    t.notOk(existsSync(join(normal.layout.projectDir, 'sub/nested/nested.txt')), 'normal is one level');

    const recursive = runStages(
      repoJob(repo, [
        ...fileSubmoduleVars,
        { key: 'GIT_SUBMODULE_STRATEGY', value: 'recursive' },
        { key: 'GIT_SUBMODULE_DEPTH', value: '1' },
      ]),
      ['get_sources'],
    );
    t.equal(recursive.status, 0, recursive.out);
    t.match(recursive.out, 'Updating/initializing submodules recursively with git depth set to 1...');
    t.equal(read(recursive.layout, 'sub/nested/nested.txt'), 'nested content\n');
  });

  t.test('GIT_SUBMODULE_PATHS limits the update; an unknown strategy fails the stage', async (t) => {
    const repo = makeRepoWithSubmodules(t);
    const paths = runStages(
      repoJob(repo, [
        ...fileSubmoduleVars,
        { key: 'GIT_SUBMODULE_STRATEGY', value: 'normal' },
        { key: 'GIT_SUBMODULE_PATHS', value: 'other' },
      ]),
      ['get_sources'],
    );
    t.equal(paths.status, 0, paths.out);
    t.equal(read(paths.layout, 'other/other.txt'), 'other content\n');
    t.notOk(existsSync(join(paths.layout.projectDir, 'sub', 'sub.txt')), 'sub not in the paths');

    const bad = runStages(
      repoJob(repo, [...fileSubmoduleVars, { key: 'GIT_SUBMODULE_STRATEGY', value: 'all' }]),
      ['get_sources'],
    );
    t.not(bad.status, 0);
    t.match(bad.out, 'unknown GIT_SUBMODULE_STRATEGY');
  });

  t.test('GIT_SUBMODULE_UPDATE_FLAGS and FORCE_HTTPS reach the script', async (t) => {
    const job = makeJob({
      variables: [
        { key: 'GIT_SUBMODULE_STRATEGY', value: 'normal' },
        { key: 'GIT_SUBMODULE_UPDATE_FLAGS', value: '--jobs 4' },
        { key: 'GIT_SUBMODULE_FORCE_HTTPS', value: 'true' },
        { key: 'CI_SERVER_URL', value: 'https://gitlab.example' },
      ],
    });
    const text = buildStageScript(job, 'get_sources', {
      layout: jobLayout(job, '/b', 0),
      concurrentId: 0,
      extra: [],
      jobStatus: 'running',
    });
    t.match(text, /submodule update --init --depth 20 --jobs 4\b/);
    t.match(
      text,
      /url\.https:\/\/gitlab-ci-token:glcbt-64_secretjobtoken@gitlab\.example\/\.insteadOf git@gitlab\.example:\n/,
      'git@host: is rewritten to https with the token',
    );
    t.match(text, /\.insteadOf ssh:\/\/git@gitlab\.example\n/);
  });

  t.test(
    'LFS objects are pulled when git-lfs is installed; GIT_LFS_SKIP_SMUDGE keeps pointers',
    async (t) => {
      if (!requireOrSkip(t, 'git-lfs')) return;
      const content = 'real large file content\n'.repeat(50);
      const repo = makeLfsRepo(t, content);
      const pulled = runStages(repoJob(repo), ['get_sources']);
      t.equal(pulled.status, 0, pulled.out);
      t.equal(read(pulled.layout, 'big.bin'), content, 'the LFS object, not its pointer');

      const skipped = runStages(repoJob(repo, [{ key: 'GIT_LFS_SKIP_SMUDGE', value: '1' }]), ['get_sources']);
      t.equal(skipped.status, 0, skipped.out);
      t.match(
        read(skipped.layout, 'big.bin'),
        /^version https:\/\/git-lfs\.github\.com\/spec\/v1/,
        'pointer',
      );
    },
  );

  t.test('GIT_CHECKOUT=false fetches without checking out', async (t) => {
    const repo = makeBareRepo(t, { 'README.md': 'x\n' });
    const r = runStages(repoJob(repo, [{ key: 'GIT_CHECKOUT', value: 'false' }]), ['get_sources']);
    t.equal(r.status, 0, r.out);
    t.match(r.out, 'Skipping Git checkout');
    t.notOk(existsSync(join(r.layout.projectDir, 'README.md')), 'no worktree files');
    const sha = execFileSync('git', ['rev-parse', 'refs/remotes/origin/main'], {
      cwd: r.layout.projectDir,
      encoding: 'utf8',
    }).trim();
    t.equal(sha, repo.sha, 'the commit was fetched');
  });

  t.test('a SHA-256 repository (repo_object_format) is fetched and checked out', async (t) => {
    const repo = makeSha256Repo(t);
    t.equal(repo.sha.length, 64);
    const job = repoJob(repo, [], ['git rev-parse HEAD']);
    job.git_info.repo_object_format = 'sha256';
    const r = runStages(job, ['get_sources', 'step_script']);
    t.equal(r.status, 0, r.out);
    t.match(r.out, repo.sha);
    t.equal(read(r.layout, 'README.md'), 'sha256 repo\n');
  });

  t.test('GIT_FETCH_EXTRA_FLAGS replaces the defaults; none means none', async (t) => {
    const fetchLine = (vars: JobVariable[]) => {
      const job = makeJob({ variables: vars });
      return buildStageScript(job, 'get_sources', {
        layout: jobLayout(job, '/b', 0),
        concurrentId: 0,
        extra: [],
        jobStatus: 'running',
      })
        .split('\n')
        .find((l) => l.includes(' fetch origin '))!;
    };
    t.match(fetchLine([]), / --prune --quiet$/);
    const custom = fetchLine([{ key: 'GIT_FETCH_EXTRA_FLAGS', value: '--no-tags' }]);
    t.match(custom, / --no-tags$/);
    t.notMatch(custom, /--prune/);
    const none = fetchLine([{ key: 'GIT_FETCH_EXTRA_FLAGS', value: 'none' }]);
    t.notMatch(none, /--prune|--quiet|none/);
    t.match(none, /--depth 20$/);
    const repo = makeBareRepo(t);
    const r = runStages(repoJob(repo, [{ key: 'GIT_FETCH_EXTRA_FLAGS', value: 'none' }]), ['get_sources']);
    t.equal(r.status, 0, r.out);
  });

  t.test('get_sources hooks run for fetch and clone, never for none or empty', async (t) => {
    const repo = makeBareRepo(t);
    const withHooks = (strategy: string) => {
      const job = repoJob(repo, [{ key: 'GIT_STRATEGY', value: strategy }]);
      job.hooks = [
        { name: 'pre_get_sources_script', script: ['echo pre-hook-ran'] },
        { name: 'post_get_sources_script', script: ['echo post-hook-ran'] },
      ];
      return job;
    };
    const clone = runStages(withHooks('clone'), ['get_sources']);
    t.equal(clone.status, 0, clone.out);
    t.match(clone.out, /pre-hook-ran[\s\S]*Fetching changes[\s\S]*post-hook-ran/);
    const empty = runStages(withHooks('empty'), ['get_sources']);
    t.equal(empty.status, 0, empty.out);
    t.notMatch(empty.out, /hook-ran/);
    t.notOk(stageHasWork(withHooks('none'), 'get_sources'), 'none: get_sources has nothing to run');
  });

  t.test('a retried get_sources first clears the worktree', async (t) => {
    const repo = makeBareRepo(t);
    const job = repoJob(repo);
    const first = runStages(job, ['get_sources']);
    t.equal(first.status, 0, first.out);
    const retry = runStages(job, ['get_sources'], first.layout, 2);
    t.equal(retry.status, 0, retry.out);
    t.match(retry.out, 'Deleting tracked and untracked files...');
    t.equal(read(retry.layout, 'README.md'), 'hello\n', 'checked out again');
  });

  t.test('GITLAB_ENV: a stage appends KEY=value lines, later stages see them', async (t) => {
    const job = makeJob({
      variables: [{ key: 'GIT_STRATEGY', value: 'none' }],
      steps: [
        {
          name: 'script',
          script: ['echo "FROM_SCRIPT=one two" >> "$GITLAB_ENV"', 'echo "in-script=$FROM_SCRIPT"'],
        },
        { name: 'release', script: ['echo "in-release=$FROM_SCRIPT"'] },
        { name: 'after_script', script: ['echo "in-after=$FROM_SCRIPT"'] },
      ],
    });
    const r = runStages(job, ['step_script', 'step_release', 'after_script']);
    t.equal(r.status, 0, r.out);
    t.match(r.out, 'in-script=\n', 'not in the stage that wrote it');
    t.match(r.out, 'in-release=one two\n');
    t.match(r.out, 'in-after=one two\n');
    const cleanup = runStages(job, ['cleanup_file_variables'], r.layout);
    t.equal(cleanup.status, 0);
    t.notOk(existsSync(join(r.layout.tmpDir, 'gitlab_runner_env')), 'removed with the job');
  });
}

t.test('settings parse as GitLab Runner parses them', async (t) => {
  for (const v of ['1', 't', 'T', 'TRUE', 'true', 'True']) t.equal(parseGoBool(v), true, v);
  for (const v of ['0', 'f', 'F', 'FALSE', 'false', 'False']) t.equal(parseGoBool(v), false, v);
  for (const v of ['yes', 'on', ' true', '']) t.equal(parseGoBool(v), undefined, JSON.stringify(v));
  t.equal(parseGoDuration('1h30m'), 5_400_000);
  t.equal(parseGoDuration('1.5s'), 1500);
  t.equal(parseGoDuration('250ms'), 250);
  t.equal(parseGoDuration('10'), undefined, 'a unit is required');
  t.equal(parseGoDuration('-5m'), -300_000);
  const s = gitSettings(
    makeJob({
      variables: [
        { key: 'GET_SOURCES_ATTEMPTS', value: '40' },
        { key: 'GIT_CHECKOUT', value: 'nope' },
      ],
    }),
  );
  t.equal(s.getSourcesAttempts, 10, 'clamped to 10');
  t.equal(s.checkout, true, 'malformed bool keeps the default');
});

t.test('CI_DEBUG_TRACE accepts what strconv.ParseBool accepts', async (t) => {
  for (const [value, on] of [
    ['1', true],
    ['True', true],
    ['true', true],
    ['false', false],
    ['yes', false],
  ] as const) {
    const job = makeJob({ variables: [{ key: 'CI_DEBUG_TRACE', value }] });
    const text = buildStageScript(job, 'step_script', {
      layout: jobLayout(job, '/b', 0),
      concurrentId: 0,
      extra: [],
      jobStatus: 'running',
    });
    t.equal(text.includes('set -o xtrace'), on, value);
  }
});

t.test('feature flags runfleet honours are exported resolved; others pass through', async (t) => {
  const job = makeJob({
    variables: [
      { key: 'FF_TIMESTAMPS', value: '0' },
      { key: 'FF_SOMETHING_ELSE', value: 'whatever' },
      { key: 'GIT_STRATEGY', value: 'none' },
    ],
    script: ['echo "ts=$FF_TIMESTAMPS other=$FF_SOMETHING_ELSE"'],
  });
  const r = runStages(job, ['step_script']);
  t.equal(r.status, 0, r.out);
  t.match(r.out, 'ts=false other=whatever');
  const dflt = runStages(
    makeJob({ variables: [{ key: 'GIT_STRATEGY', value: 'none' }], script: ['echo "ts=$FF_TIMESTAMPS"'] }),
    ['step_script'],
  );
  t.match(dflt.out, 'ts=true', "GitLab Runner's default");
});

t.test('git-lfs present on CI', async (t) => {
  if (process.env.CI === 'true') t.ok(findProgram('git-lfs'), '.ci/run installs git-lfs');
});

t.test('GIT_CLONE_PATH: within the builds dir, only where custom_build_dir allows it', async (t) => {
  const job = makeJob({
    variables: [{ key: 'GIT_CLONE_PATH', value: '$CI_BUILDS_DIR/$CI_CONCURRENT_ID/mine' }],
  });
  const layout = jobLayout(job, '/builds', 3);
  t.equal(layout.projectDir, '/builds/3/mine');
  t.equal(layout.tmpDir, '/builds/3/mine.tmp');
  t.throws(() => jobLayout(job, '/builds', 3, { customBuildDir: false }), {
    failureReason: 'runner_configuration_error',
    message: /GIT_CLONE_PATH is not allowed, enable `custom_build_dir`/,
  });
  for (const outside of ['/etc/x', '$CI_BUILDS_DIR/../escape', '$CI_BUILDS_DIR', 'relative/path']) {
    const bad = makeJob({ variables: [{ key: 'GIT_CLONE_PATH', value: outside }] });
    t.throws(() => jobLayout(bad, '/builds', 0), { message: /has to be within "\/builds"/ }, outside);
  }
  if (!findProgram('git')) return;
  const repo = makeBareRepo(t);
  const cloned = repoJob(repo, [{ key: 'GIT_CLONE_PATH', value: '$CI_BUILDS_DIR/custom/place' }], ['pwd']);
  const l = jobLayout(cloned, join(dir, 'builds-custom'), 0);
  const r = runStages(cloned, ['get_sources', 'step_script'], l);
  t.equal(r.status, 0, r.out);
  t.match(r.out, `${join(dir, 'builds-custom')}/custom/place\n`);
  t.equal(read(l, 'README.md'), 'hello\n');
});

t.test('CI_SERVER_TLS_CA_FILE: the CA chain becomes a file variable git uses for GitLab', async (t) => {
  if (!findProgram('git')) return;
  const repo = makeBareRepo(t);
  const pem = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
  const job = repoJob(
    repo,
    [{ key: 'CI_SERVER_URL', value: 'https://gitlab.example:8443' }],
    ['cat "$CI_SERVER_TLS_CA_FILE"', 'git config --get http.https://gitlab.example:8443.sslCAInfo'],
  );
  const l = jobLayout(job, join(dir, 'builds-tls'), 0);
  let out = '';
  for (const stage of ['get_sources', 'step_script'] as StageName[]) {
    const r = spawnSync('/bin/sh', ['-s'], {
      input: buildStageScript(job, stage, {
        layout: l,
        concurrentId: 0,
        extra: [],
        jobStatus: 'running',
        tlsCaChain: pem,
      }),
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: dir },
    });
    out += r.stdout + r.stderr;
    t.equal(r.status, 0, out);
  }
  t.match(out, pem);
  t.match(out, `${l.tmpDir}/CI_SERVER_TLS_CA_FILE\n`, 'git verifies GitLab with that file');
});
