import t from 'tap';
import { join } from 'node:path';
import { loadJobsFile, runDevCoordinator, validateJobsFile } from '../../../src/devtools/coordinator/cli.js';
import type { Coordinator } from '../../../src/devtools/coordinator/server.js';

const JOBS_YAML = `
jobs:
  - name: hello
    script: ["echo hello", "echo $API_KEY"]
    after_script: ["echo bye"]
    variables:
      GREETING: hi
      API_KEY: { value: super-secret-1, masked: true }
    timeout: 600
  - name: fails
    script: ["exit 3"]
`;

t.test('serves queued jobs from a YAML file until aborted', async (t) => {
  const dir = t.testdir({ 'jobs.yaml': JOBS_YAML });
  const lines: string[] = [];
  const ac = new AbortController();
  let coordinator: Coordinator | undefined;
  const done = runDevCoordinator(
    { port: 0, host: '127.0.0.1', jobsFile: join(dir, 'jobs.yaml'), token: 'glrt-given' },
    { out: (s) => lines.push(s), err: (s) => lines.push(s) },
    { signal: ac.signal, onReady: (c) => (coordinator = c) },
  );
  while (!coordinator) await new Promise((r) => setTimeout(r, 5));
  const jobs = coordinator.jobs();
  t.same(
    jobs.map((j) => [j.id, j.name, j.state]),
    [
      [1, 'hello', 'pending'],
      [2, 'fails', 'pending'],
    ],
  );
  const res = await fetch(`${coordinator.url}/api/v4/jobs/request`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token: 'glrt-given', system_id: 's_abcdefabcdef' }),
  });
  const payload = (await res.json()) as {
    variables: { key: string; value: string; masked?: boolean }[];
    runner_info: { timeout: number };
    steps: { name: string; script: string[] }[];
  };
  t.match(payload.variables, [{ key: 'CI_JOB_ID', value: '1' }]);
  t.ok(payload.variables.some((v) => v.key === 'API_KEY' && v.masked && v.value === 'super-secret-1'));
  t.ok(
    payload.variables.some((v) => v.key === 'GIT_STRATEGY' && v.value === 'none'),
    'no repo: no sources',
  );
  t.equal(payload.runner_info.timeout, 600);
  t.same(payload.steps[1], {
    name: 'after_script',
    script: ['echo bye'],
    timeout: 600,
    when: 'always',
    allow_failure: true,
  });

  ac.abort();
  t.equal(await done, 0);
  const text = lines.join('\n');
  t.match(text, `listening on ${coordinator.url}`);
  t.match(text, 'queued 2 jobs');
  t.match(text, 'job 1 hello: assigned to s_abcdefabcdef');
  t.match(text, 'RUNFLEET_GITLAB_TOKEN=<the token you passed>');
  t.notMatch(text, 'glrt-given', 'a token the user passed is not echoed');
  t.match(text, 'coordinator stopped');
});

t.test('a generated token is printed so a fleet can use it', async (t) => {
  const lines: string[] = [];
  const ac = new AbortController();
  const done = runDevCoordinator(
    { port: 0 },
    { out: (s) => lines.push(s), err: (s) => lines.push(s) },
    { signal: ac.signal, onReady: () => ac.abort() },
  );
  t.equal(await done, 0);
  t.match(lines.join('\n'), /export RUNFLEET_GITLAB_TOKEN=glrt-[A-Za-z0-9_-]+/);
  t.match(lines.join('\n'), 'queued 0 jobs');
});

t.test('jobs files: JSON lists work; bad specs are named', async (t) => {
  const dir = t.testdir({
    'list.json': JSON.stringify([{ name: 'a', script: ['true'] }]),
    'bad.yaml': 'jobs:\n  - name: a\n    script: []\n',
  });
  t.equal((await loadJobsFile(join(dir, 'list.json'))).jobs.length, 1);
  await t.rejects(loadJobsFile(join(dir, 'bad.yaml')), {
    code: 'CONFIG_INVALID',
    message: /jobs\[0\]\.script/,
  });
  await t.rejects(loadJobsFile(join(dir, 'missing.yaml')), { code: 'USAGE' });
  t.throws(() => validateJobsFile({ jobs: [{ name: 'x', script: ['y'] }], repo: { url: 'u' } }, 'f'), {
    message: /repo needs url and sha/,
  });
  t.throws(() => validateJobsFile({ jobs: [{ name: 'x', script: ['y'], timeout: -1 }] }, 'f'), {
    message: /timeout/,
  });
});
