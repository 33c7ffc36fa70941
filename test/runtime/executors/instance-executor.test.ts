/**
 * Whole jobs on the instance executor with real programs: an sshd instance on loopback and a
 * local sandbox, a real git clone of a local bare repository, script failure with its exit code,
 * the job deadline, a graceful cancel, and an instance that dies mid-job.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { shellQuote } from '../../../src/runtime/script/shell-quote.js';
import { KnownHostsFile } from '../../../src/runtime/connectors/known-hosts.js';
import { LocalConnector } from '../../../src/runtime/connectors/local-connector.js';
import { SshConnectorPool } from '../../../src/runtime/connectors/ssh-connector.js';
import { InstanceExecutor } from '../../../src/runtime/executors/instance-executor.js';
import { MemoryJobOutput } from '../../../src/runtime/executors/memory-output.js';
import { runStages, type RunStagesOptions } from '../../../src/runtime/executors/stage-runner.js';
import type { Connector } from '../../../src/runtime/connectors/connector.js';
import { makeJob, type JobFixtureOptions } from '../../fixtures/runtime/job.js';
import { makeBareRepo } from '../../helpers/topology/git-repo.js';
import { processesMatching, waitFor } from '../../helpers/topology/processes.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startSshd } from '../../helpers/topology/sshd.js';

if (requireOrSkip(t, 'sshd', 'ssh-keygen', 'git')) {
  const state = mkdtempSync(join(tmpdir(), 'rf-inst-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const repo = makeBareRepo(t, { 'README.md': 'hello from the repo\n' });
  const [sshd, doomed] = await Promise.all([startSshd(t), startSshd(t)]);
  const pool = new SshConnectorPool({
    knownHosts: new KnownHostsFile(join(state, 'known_hosts.json')),
    killGraceMs: 500,
  });
  t.teardown(() => pool.close());
  const sshConnector = (s: typeof sshd) =>
    pool.get({ host: s.host, port: s.port, username: s.username, privateKey: s.privateKey });
  const local = new LocalConnector({
    workdir: join(state, 'local', 'fleet', 'local-1a', 'work'),
    killGraceMs: 500,
  });

  const job = (o: JobFixtureOptions = {}) =>
    makeJob({ repoUrl: repo.url, sha: repo.sha, ref: repo.ref, ...o });

  const run = async (
    connector: Connector,
    o: JobFixtureOptions,
    opts: RunStagesOptions = {},
    buildsDir = join(state, 'builds'),
  ) => {
    const output = new MemoryJobOutput();
    const executor = new InstanceExecutor({ connector, buildsDir, concurrentId: 0 });
    const result = await runStages(job(o), executor, output, opts);
    return { result, log: output.text(), sections: output.sections };
  };

  t.test('success over SSH: real clone, checkout of the sha, sections, no token in the log', async (t) => {
    const { result, log, sections } = await run(sshConnector(sshd), {
      script: ['cat README.md', 'git rev-parse HEAD', 'echo "dir=$CI_PROJECT_DIR"'],
      afterScript: ['echo "after status=$CI_JOB_STATUS"'],
    });
    t.same(result, { state: 'success', status: 'success', message: 'Job succeeded' });
    t.match(log, 'hello from the repo\n');
    t.match(log, `${repo.sha}\n`);
    t.match(log, `dir=${join(state, 'builds', '0', 'group', 'project')}\n`);
    t.match(log, 'after status=success');
    t.match(log, '$ cat README.md');
    t.notMatch(log, 'secretjobtoken');
    t.same(sections, [
      'prepare_executor',
      'prepare_script',
      'get_sources',
      'step_script',
      'after_script',
      'cleanup_file_variables',
    ]);
    t.match(log, /Job succeeded\n$/);
  });

  t.test('fetch strategy reuses the checkout and moves to another sha', async (t) => {
    const first = await run(sshConnector(sshd), {
      sha: repo.firstSha,
      depth: 0,
      script: ['ls', 'git rev-parse HEAD'],
    });
    t.equal(first.result.state, 'success', first.log);
    t.match(first.log, `${repo.firstSha}\n`);
    t.notMatch(first.log, 'README.md');
  });

  t.test('script failure: exit code, later commands skipped, after_script sees failed', async (t) => {
    const { result, log } = await run(sshConnector(sshd), {
      script: ['echo before', 'exit 3', 'echo never'],
      afterScript: ['echo "after status=$CI_JOB_STATUS"'],
    });
    t.match(result, { state: 'failed', status: 'failed', failureReason: 'script_failure', exitCode: 3 });
    t.notMatch(log, 'never');
    t.match(log, 'after status=failed');
    t.match(log, 'ERROR: Job failed: exit code 3');
  });

  t.test('timeout: job_execution_timeout, no after_script past the deadline, nothing left', async (t) => {
    const marker = `sleep 6${Math.floor(Math.random() * 900) + 100}.${process.pid}`; // unique to this process
    const started = Date.now();
    const { result, log } = await run(
      sshConnector(sshd),
      { script: [`${marker}`], afterScript: ['echo "after status=$CI_JOB_STATUS"'] },
      { timeoutMs: 1500 },
    );
    t.match(result, { state: 'failed', status: 'timedout', failureReason: 'job_execution_timeout' });
    // The step sleeps for well over an hour: it only ended because the deadline killed it (the
    // status says so); how soon depends on the machine's load (a figure, not a check).
    t.comment(`stopped ${Date.now() - started} ms after the start, with a 1.5 s deadline`);
    t.notMatch(log, 'after status=', 'the job deadline leaves after_script no time (as GitLab Runner)');
    t.ok(await waitFor(() => processesMatching(marker).length === 0, 2000), 'no process left');
  });

  t.test('graceful cancel: the step is killed, after_script runs with canceled', async (t) => {
    const cancel = new AbortController();
    setTimeout(() => cancel.abort(), 800);
    const { result, log } = await run(
      local,
      { script: ['sleep 30'], afterScript: ['echo "after status=$CI_JOB_STATUS"'] },
      { cancel: cancel.signal },
      join(state, 'local', 'fleet', 'local-1a', 'work', 'builds'),
    );
    t.match(result, { state: 'failed', status: 'canceled', failureReason: 'unknown_failure' });
    t.match(log, 'after status=canceled');
  });

  t.test('graceful cancel over SSH: the step is killed, after_script runs with canceled', async (t) => {
    const cancel = new AbortController();
    const output = new MemoryJobOutput();
    const executor = new InstanceExecutor({ connector: sshConnector(sshd), buildsDir: join(state, 'sc') });
    const running = runStages(
      job({
        script: ['echo step-started', 'sleep 30', 'echo never'],
        afterScript: ['echo "after status=$CI_JOB_STATUS"'],
      }),
      executor,
      output,
      { cancel: cancel.signal },
    );
    t.ok(await waitFor(() => output.text().includes('step-started'), 20_000), 'the step runs');
    cancel.abort();
    const result = await running;
    t.match(result, { state: 'failed', status: 'canceled', failureReason: 'unknown_failure' });
    t.notMatch(output.text(), 'never');
    t.match(output.text(), 'after status=canceled');
    t.equal(executor.sessionsStarted, 2, 'after_script in a session of its own, the killed one gone');
  });

  t.test('over SSH a stage may hold any text: non-ASCII, more than a pipe buffer, GITLAB_ENV', async (t) => {
    // Past a pipe buffer (64 KiB), within what one variable may hold in the environment (128 KiB).
    const big = 'x'.repeat(100_000);
    const { result, log } = await run(sshConnector(sshd), {
      variables: [{ key: 'BIG', value: big }],
      // The step's text is not ASCII; after_script's is, and larger than a pipe buffer.
      script: ['echo "uni=ümlaut ✓ 日本"', 'echo "FROM_STEP=é ✓" >> "$GITLAB_ENV"'],
      afterScript: ['echo "big=${#BIG}"', 'echo "after=$FROM_STEP"'],
    });
    t.equal(result.state, 'success', log.slice(-2000));
    t.match(log, 'uni=ümlaut ✓ 日本\n');
    t.match(log, `big=${big.length}\n`);
    t.match(log, 'after=é ✓\n');
  });

  t.test(
    'a bash login shell whose rc file set errexit, aliases and IFS runs the stages as a fresh bash',
    async (t) => {
      // A login shell that read such a ~/.bashrc: the connector runs every command through it.
      const rc = 'set -eu; shopt -s expand_aliases nullglob; alias echo=false; IFS=:; ';
      const viaRc = (c: string) => `exec bash -c ${shellQuote(rc + c)}`;
      const login: Connector = {
        description: 'local bash with an rc file',
        exec: (c, o) => local.exec(viaRc(c), o),
        spawn: (c, o) => local.spawn(viaRc(c), o),
        close: async () => undefined,
      };
      const { result, log } = await run(
        login,
        {
          script: [
            "echo \"session=$(tr '\\0' ' ' < /proc/$$/cmdline)\"",
            'set -- $(echo "a b"); echo "words=$#"',
            'exit 3',
          ],
          afterScript: ['echo "after status=$CI_JOB_STATUS"'],
        },
        {},
        join(state, 'rc'),
      );
      t.match(result, { state: 'failed', failureReason: 'script_failure', exitCode: 3 });
      t.match(log, /session=.*read -r -N/, 'the login shell runs the session loop itself');
      t.match(log, 'words=2\n', 'default IFS');
      t.match(log, 'after status=failed', 'the session outlived the failed stage');
      t.match(log, 'ERROR: Job failed: exit code 3');
    },
  );

  t.test('hard abort: nothing more runs, not even after_script', async (t) => {
    const signal = AbortSignal.timeout(800);
    const { result, log } = await run(
      local,
      { script: ['sleep 30'], afterScript: ['echo after-ran'] },
      { signal },
      join(state, 'lb'),
    );
    t.match(result, { status: 'canceled' });
    t.notMatch(log, 'after-ran');
  });

  t.test('local sandbox: a whole job as local processes', async (t) => {
    const workdir = join(state, 'local', 'fleet', 'local-1a', 'work');
    const { result, log } = await run(
      local,
      { script: ['cat README.md', 'pwd'] },
      {},
      join(workdir, 'builds'),
    );
    t.equal(result.state, 'success', log);
    t.match(log, 'hello from the repo');
    t.match(log, join(workdir, 'builds', '0', 'group', 'project'));
  });

  t.test('a git failure in get_sources fails the job before the steps', async (t) => {
    const { result, log } = await run(
      local,
      { repoUrl: join(state, 'no-such-repo.git'), script: ['echo step-ran'] },
      {},
      join(state, 'lb2'),
    );
    t.match(result, { state: 'failed', failureReason: 'script_failure' });
    t.notMatch(log, 'step-ran');
  });

  t.test('an instance that dies mid-job is runner_system_failure', async (t) => {
    setTimeout(() => doomed.crash(), 1000);
    const { result } = await run(sshConnector(doomed), { script: ['sleep 20'] });
    t.match(result, { state: 'failed', failureReason: 'runner_system_failure' });
    t.match(result.message, /connection lost|ended without an exit status/);
  });
}
