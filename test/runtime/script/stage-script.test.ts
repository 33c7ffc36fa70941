/**
 * The script builder, checked by running its output under real shells (dash, busybox ash, bash):
 * quoting torture, file and raw variables, exit codes, stdin safety, pipefail, after_script status.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { JobVariable } from '../../../src/runtime/gitlab/job.js';
import { jobLayout, projectPath } from '../../../src/runtime/script/layout.js';
import { shellQuote } from '../../../src/runtime/script/shell-quote.js';
import { buildStageScript, stepStages, type StageName } from '../../../src/runtime/script/stage-script.js';
import { SHELL_DETECT_COMMAND } from '../../../src/runtime/script/script-writer.js';
import { expandValue } from '../../../src/runtime/script/variables.js';
import { makeJob } from '../../fixtures/runtime/job.js';
import { findProgram } from '../../helpers/topology/require-or-skip.js';

const TORTURE = [
  "it's",
  '$HOME and ${HOME} and $(id) and `id`',
  'line 1\nline 2\n',
  'back\\slash \\n \\\\',
  "\"double\" 'single' ''",
  '',
  ' leading and trailing ',
  '!bang *glob ?q [x] ~tilde #hash ;semi &amp |pipe',
  'ümlaut ✓ \x1b[31mred\x1b[0m \t tab',
  "'",
  "'\\''",
  '-n',
];

const shells: [string, string[]][] = [
  ['dash', ['/bin/sh']],
  ['bash', ['bash']],
];
if (findProgram('busybox')) shells.push(['busybox ash', ['busybox', 'sh']]);

const dir = mkdtempSync(join(tmpdir(), 'rf-script-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function runShell(
  shell: string[],
  script: string,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(shell[0]!, [...shell.slice(1), '-s'], { input: script, encoding: 'utf8', cwd: dir });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('shellQuote round-trips every value through every shell', async (t) => {
  for (const [name, shell] of shells) {
    for (const value of TORTURE) {
      const r = runShell(shell, `printf '%s' ${shellQuote(value)}`);
      t.equal(r.stdout, value, `${name}: ${JSON.stringify(value)}`);
    }
  }
});

t.test('expandValue follows GitLab: $X, ${X}, unknown empty, $$ literal', async (t) => {
  const vals = new Map([
    ['A', 'a'],
    ['B', '$A'],
  ]);
  t.equal(expandValue('x$A-${A}-$NOPE-$$A-$B', vals), 'x-a-a--$A-$A'.replace('x-a', 'xa'));
});

t.test('projectPath never escapes the builds dir', async (t) => {
  t.equal(projectPath(makeJob()), 'group/project');
  t.equal(projectPath(makeJob({ variables: [{ key: 'CI_PROJECT_PATH', value: '../../etc/x' }] })), 'etc/x');
  const noPath = makeJob({ repoUrl: 'https://h.example/a/b.git' });
  noPath.variables = noPath.variables.filter((v) => v.key !== 'CI_PROJECT_PATH');
  t.equal(projectPath(noPath), 'a/b');
});

function stepScript(
  vars: JobVariable[],
  script: string[],
  stage: StageName = 'step_script',
  status = 'running' as const,
) {
  const job = makeJob({ variables: vars, script, afterScript: ['echo "status=$CI_JOB_STATUS"'] });
  const layout = jobLayout(job, join(dir, 'builds'), 0);
  mkdirSync(layout.projectDir, { recursive: true });
  return {
    layout,
    text: buildStageScript(job, stage, { layout, concurrentId: 0, extra: [], jobStatus: status }),
  };
}

t.test('variables are exported byte for byte; file variables become files; raw stays raw', async (t) => {
  const vars: JobVariable[] = [
    ...TORTURE.map((value, i) => ({ key: `T${i}`, value, raw: true })),
    { key: 'REF', value: 'pre-$T0-post' },
    { key: 'RAWREF', value: 'pre-$T0-post', raw: true },
    { key: 'SECRET_FILE', value: "-----BEGIN KEY-----\nab'c$d\n", file: true, raw: true },
    { key: 'EXPANDED_FILE', value: 'x$T0', file: true },
    { key: 'not-a-name', value: 'skipped' },
  ];
  const checks = [
    ...TORTURE.map((_, i) => `printf '%s' "$T${i}" > T${i}.out`),
    `printf '%s' "$REF" > REF.out`,
    `printf '%s' "$RAWREF" > RAWREF.out`,
    `cat "$SECRET_FILE" > FILE.out; printf '%s' "$SECRET_FILE" > FILEPATH.out`,
  ];
  for (const [name, shell] of shells) {
    const { layout, text } = stepScript(vars, checks);
    const r = runShell(shell, text);
    t.equal(r.status, 0, `${name}: exit 0 (${r.stderr})`);
    const read = (f: string) => readFileSync(join(layout.projectDir, f), 'utf8');
    TORTURE.forEach((v, i) => t.equal(read(`T${i}.out`), v, `${name}: T${i}`));
    t.equal(read('REF.out'), "pre-it's-post", `${name}: non-raw expanded`);
    t.equal(read('RAWREF.out'), 'pre-$T0-post', `${name}: raw not expanded`);
    t.equal(read('FILE.out'), "-----BEGIN KEY-----\nab'c$d\n", `${name}: file content`);
    t.equal(
      readFileSync(`${layout.tmpDir}/EXPANDED_FILE`, 'utf8'),
      "xit's",
      `${name}: non-raw file expanded`,
    );
    t.equal(read('FILEPATH.out'), `${layout.tmpDir}/SECRET_FILE`, `${name}: file path exported`);
  }
});

t.test('commands are echoed in green and the first failure stops the script with its code', async (t) => {
  for (const [name, shell] of shells) {
    const { text } = stepScript([], ['echo one', 'if true; then (exit 3); fi', 'echo never']);
    const r = runShell(shell, text);
    t.equal(r.status, 3, `${name}: exit code of the failing command`);
    t.match(r.stdout, '\x1b[32;1m$ echo one\x1b[0;m\none\n', `${name}: echo then output`);
    t.notMatch(r.stdout, /never/, `${name}: stopped`);
  }
});

t.test('a command reading stdin cannot swallow the rest of the script', async (t) => {
  for (const [name, shell] of shells) {
    const { text } = stepScript([], ['cat', 'read x || echo "read saw EOF"', 'echo after']);
    const r = runShell(shell, text);
    t.equal(r.status, 0, name);
    t.match(r.stdout, /read saw EOF[\s\S]*after/, `${name}: later commands still run`);
  }
});

t.test('pipefail where the shell has it', async (t) => {
  for (const [name, shell] of shells.filter(([n]) => n !== 'dash' || hasPipefail('/bin/sh'))) {
    const { text } = stepScript([], ['false | true', 'echo never']);
    t.equal(runShell(shell, text).status, 1, `${name}: a failing pipe fails`);
  }
});

function hasPipefail(sh: string): boolean {
  return spawnSync(sh, ['-c', 'set -o pipefail'], { stdio: 'ignore' }).status === 0;
}

t.test('after_script sees how the job ended; a job variable cannot fake it', async (t) => {
  const job = makeJob({
    variables: [{ key: 'CI_JOB_STATUS', value: 'success' }],
    afterScript: ['echo "status=$CI_JOB_STATUS"'],
  });
  const layout = jobLayout(job, join(dir, 'builds'), 1);
  mkdirSync(layout.projectDir, { recursive: true });
  for (const status of ['failed', 'canceled', 'timedout'] as const) {
    const text = buildStageScript(job, 'after_script', {
      layout,
      concurrentId: 1,
      extra: [],
      jobStatus: status,
    });
    t.match(runShell(['/bin/sh'], text).stdout, `status=${status}\n`);
  }
  const step = buildStageScript(job, 'step_script', {
    layout,
    concurrentId: 1,
    extra: [],
    jobStatus: 'running',
  });
  t.match(step, /export CI_JOB_STATUS=running/);
});

t.test(
  'cleanup: the tmp dir goes with what a job left in it; one that holds only an empty GITLAB_ENV stays',
  async (t) => {
    const job = makeJob({ variables: [{ key: 'GIT_STRATEGY', value: 'none' }], script: ['true'] });
    const ctx = (slot: number, startsJob = false) => ({
      layout: jobLayout(job, join(dir, 'cleanup', String(slot)), 0),
      concurrentId: 0,
      extra: [],
      jobStatus: 'running' as const,
      startsJob,
    });
    const cases: [string, (tmp: string) => void, boolean][] = [
      ['nothing written', () => undefined, true],
      ['GITLAB_ENV written', (tmp) => writeFileSync(join(tmp, 'gitlab_runner_env'), 'A=1\n'), false],
      ['a file variable', (tmp) => writeFileSync(join(tmp, 'SECRET'), 'x'), false],
      ['a hidden file', (tmp) => writeFileSync(join(tmp, '.hidden'), 'x'), false],
      ['a dangling link', (tmp) => symlinkSync(join(tmp, 'nowhere'), join(tmp, 'link')), false],
      ['a directory', (tmp) => mkdirSync(join(tmp, 'git-template')), false],
    ];
    let slot = 0;
    for (const [name, shell] of shells) {
      for (const [what, leave, kept] of cases) {
        const c = ctx(slot++, true);
        t.equal(
          runShell(shell, buildStageScript(job, 'step_script', c)).status,
          0,
          `${name}, ${what}: the step`,
        );
        leave(c.layout.tmpDir);
        const r = runShell(shell, buildStageScript(job, 'cleanup_file_variables', c));
        t.equal(r.status, 0, `${name}, ${what}: cleanup (${r.stderr})`);
        t.equal(existsSync(c.layout.tmpDir), kept, `${name}, ${what}: tmp dir ${kept ? 'kept' : 'removed'}`);
      }
    }
    // A job that was killed before its cleanup left GITLAB_ENV behind: the next job starts afresh.
    const c = ctx(slot);
    mkdirSync(c.layout.tmpDir, { recursive: true });
    writeFileSync(join(c.layout.tmpDir, 'gitlab_runner_env'), 'STALE=1\n');
    const see = (startsJob: boolean) =>
      runShell(
        ['/bin/sh'],
        buildStageScript(
          makeJob({ variables: job.variables, script: ['echo "stale=$STALE"'] }),
          'step_script',
          { ...c, startsJob },
        ),
      ).stdout;
    t.match(see(false), 'stale=1\n', 'a later stage of the same job sees what an earlier one wrote');
    writeFileSync(join(c.layout.tmpDir, 'gitlab_runner_env'), 'STALE=1\n');
    t.match(see(true), 'stale=\n', "the job's first stage empties it");
  },
);

t.test('runner variables', async (t) => {
  const { layout, text } = stepScript(
    [],
    ['env | grep -E "^CI_(BUILDS_DIR|PROJECT_DIR|SERVER|JOB_TIMEOUT|CONCURRENT_ID)=" | sort'],
  );
  const r = runShell(['/bin/sh'], text);
  t.equal(
    r.stdout
      .split('\n')
      .filter((l) => l.startsWith('CI_'))
      .join('\n'),
    [
      `CI_BUILDS_DIR=${layout.buildsDir}`,
      'CI_CONCURRENT_ID=0',
      `CI_JOB_TIMEOUT=3600`,
      `CI_PROJECT_DIR=${layout.projectDir}`,
      'CI_SERVER=yes',
    ].join('\n'),
  );
});

t.test('stages: steps in payload order, after_script apart', async (t) => {
  const job = makeJob({
    steps: [
      { name: 'script', script: ['a'] },
      { name: 'after_script', script: ['b'] },
      { name: 'release', script: ['c'] },
    ],
  });
  t.same(stepStages(job), ['step_script', 'step_release']);
});

t.test('get_sources: the token-bearing URL is never echoed; the script shape is stable', async (t) => {
  const job = makeJob({ variables: [{ key: 'GIT_STRATEGY', value: 'clone' }] });
  const layout = jobLayout(job, '/builds', 2);
  const text = buildStageScript(job, 'get_sources', {
    layout,
    concurrentId: 2,
    extra: [],
    jobStatus: 'running',
  });
  const echoed = text.split('\n').filter((l) => l.includes('printf'));
  t.notOk(
    echoed.some((l) => l.includes('secretjobtoken') && !l.includes('export')),
    'no notice carries the token',
  );
  t.match(text, /GIT_TERMINAL_PROMPT=0/);
  t.match(text, /--depth 20/);
  t.match(text, /rm -rf \/builds\/2\/group\/project\n/, 'clone starts afresh');
  // The arch line depends on the machine running the tests.
  t.matchSnapshot(
    text
      .replace(/CI_RUNNER_EXECUTABLE_ARCH=\S+/, 'CI_RUNNER_EXECUTABLE_ARCH=<arch>')
      .replace(/CI_RUNNER_VERSION=\S+/, 'CI_RUNNER_VERSION=<version>'),
    'get_sources script',
  );
  const none = makeJob({ variables: [{ key: 'GIT_STRATEGY', value: 'none' }] });
  t.notMatch(
    buildStageScript(none, 'get_sources', { layout, concurrentId: 2, extra: [], jobStatus: 'running' }),
    /git /,
  );
});

t.test('the detect command prefers bash and falls back to sh', async (t) => {
  const out = execFileSync('/bin/sh', ['-c', SHELL_DETECT_COMMAND], {
    input: 'echo "${BASH_VERSION:+bash}"',
    encoding: 'utf8',
  });
  t.equal(out, findProgram('bash') ? 'bash\n' : '\n');
  const onlySh = join(dir, 'only-sh');
  mkdirSync(onlySh);
  symlinkSync('/bin/sh', join(onlySh, 'sh'));
  const noBash = execFileSync('/bin/sh', ['-c', SHELL_DETECT_COMMAND], {
    input: 'echo "${BASH_VERSION:-sh}"',
    encoding: 'utf8',
    env: { PATH: onlySh },
  });
  t.equal(noBash, 'sh\n', 'no bash on PATH: plain sh');
});

t.test(
  'a shared builds root: each runner (short token) has its own directory, as in GitLab Runner',
  async (t) => {
    const job = makeJob({});
    t.equal(jobLayout(job, '/b', 3).projectDir, '/b/3/group/project', 'a root of its own');
    const a = jobLayout(job, '/b', 3, { runnerDir: 'abcdefghi' });
    const b = jobLayout(job, '/b', 3, { runnerDir: 'zyxwvutsr' });
    t.equal(a.projectDir, '/b/abcdefghi/3/group/project');
    t.equal(a.buildsDir, '/b', 'CI_BUILDS_DIR stays the root');
    t.equal(a.tmpDir, '/b/abcdefghi/3/group/project.tmp');
    t.not(a.projectDir, b.projectDir, 'two runners in the same slot never share a project directory');
    t.equal(
      jobLayout(job, '/b', 0, { runnerDir: '../../etc' }).projectDir,
      '/b/etc/0/group/project',
      'only plain characters of the segment are kept: it cannot leave the root',
    );
  },
);
