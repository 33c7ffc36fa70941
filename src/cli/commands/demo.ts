/**
 * `runfleet demo`: the whole loop on the embedded defaults, in one process and one command. A
 * GitLab-compatible coordinator on loopback queues example jobs; the manager (daemon + job
 * runtime) scales a local fleet up for them, runs them in local sandboxes, reports each result to
 * the coordinator, and scales back to zero. Exit 0 when every job ended as expected and the fleet
 * is back at zero instances.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exampleJob } from '../../devtools/coordinator/example-job.js';
import { parseTimestampedLine } from '../../runtime/gitlab/timestamper.js';
import { startCoordinator, type CoordinatorEvent } from '../../devtools/coordinator/server.js';
import { silentLogger } from '../../util/logger.js';
import type { JobPayload } from '../../runtime/gitlab/job.js';
import type { GlobalOptions } from '../root.js';
import { styler, table, type Io } from '../io.js';
import { localStateDir, startManager } from '../root.js';
import { plan } from './plan.js';

export interface DemoOptions {
  /** Give up after this long. */
  timeoutMs: number;
}

interface DemoJob {
  payload: JobPayload;
  expect: 'success' | 'failed';
  what: string;
  /** A later pipeline stage: queued once this job id has finished, as GitLab queues it. */
  after?: number;
  /** The log must show a cache hit (`Successfully extracted cache`). */
  cacheHit?: boolean;
}

/** The demo's cache: the dependencies a build "downloads" once, then restores. */
const DEMO_CACHE = [{ key: 'demo-deps-$CI_COMMIT_REF_NAME', paths: ['deps/'], policy: 'pull-push' }];
const DEPS_SCRIPT = [
  'if [ -f deps/lib.txt ]; then echo "deps from the cache: $(cat deps/lib.txt)"; else echo "no cache: fetching deps"; sleep 1; mkdir -p deps; echo "lib 1.0 (fetched by job $CI_JOB_ID)" > deps/lib.txt; fi',
];

const TOKEN_ENV = 'RUNFLEET_DEMO_TOKEN';

export async function demo(opts: GlobalOptions, d: DemoOptions, io: Io): Promise<number> {
  const style = styler(io.color);
  const root = join(localStateDir(opts.state), 'demo');
  // A fresh start every time, but for the cache: the next demo run finds this one's.
  for (const entry of await readdir(root).catch(() => [] as string[])) {
    if (entry !== 'cache') await rm(join(root, entry), { recursive: true, force: true });
  }
  const dir = join(root, 'fleets');
  await mkdir(dir, { recursive: true });
  const demoOpts: GlobalOptions = { ...opts, dir, state: join(root, 'state.db') };

  const token = `glrt-demo${randomBytes(12).toString('hex')}`;
  const events: CoordinatorEvent[] = [];
  const jobs = demoJobs();
  const coordinator = await startCoordinator({
    runnerTokens: [token],
    longPollMs: 2000,
    onEvent: (e) => {
      events.push(e);
      // The next stage of the pipeline starts when the job it needs has succeeded.
      if (e.type === 'finished' && e.state === 'success') {
        for (const j of jobs) if (j.after === e.jobId) coordinator.enqueue(j.payload);
      }
    },
  });
  for (const j of jobs) j.payload = { ...j.payload, variables: serverVariables(j.payload, coordinator.url) };
  try {
    await writeFile(join(dir, 'demo.yaml'), fleetFile(coordinator.url));
    io.out(style.bold(`runfleet demo: a GitLab-compatible coordinator is serving at ${coordinator.url}`));
    io.out(
      `Fleet file ${join(dir, 'demo.yaml')}: a local fleet, 2 jobs per instance, at most 3 instances, idle_count 0.\n`,
    );
    io.out(style.bold('$ runfleet plan'));
    await plan(demoOpts, { format: 'text', detailedExitcode: false }, io);

    for (const j of jobs) if (j.after === undefined) coordinator.enqueue(j.payload);
    io.out(
      style.bold(
        `\nQueued ${jobs.filter((j) => j.after === undefined).length} jobs (and a pipeline: compile → unit-test; a cached build's second run). Starting the manager (daemon + job runtime)...\n`,
      ),
    );

    const manager = await startManager(demoOpts, {
      listen: '127.0.0.1:0',
      graceMs: 30_000,
      intervalMs: 1000,
      logger: silentLogger,
      env: { [TOKEN_ENV]: token },
      checkIntervalMs: 200,
    });
    let ok: boolean;
    try {
      ok = await followLoop(manager.daemon, coordinator, jobs, events, d.timeoutMs, io, style);
    } finally {
      await manager.stop();
    }
    const asExpected = report(coordinator, jobs, io, style);
    ok = ok && asExpected;
    io.out(
      ok
        ? style.green(
            style.bold('\nThe whole loop ran: scaled up, ran every job, reported it, scaled back to zero.'),
          )
        : style.red('\nThe demo did not complete as expected.'),
    );
    return ok ? 0 : 1;
  } finally {
    await coordinator.close();
  }
}

function fleetFile(url: string): string {
  return `# Written by runfleet demo.
name: demo
provider: { type: local }
executor: instance
capacity_per_instance: 2
max_instances: 3
policy:
  - idle_count: 0
    idle_time: 3s
gitlab:
  url: ${url}
  token: { env: ${TOKEN_ENV} }
`;
}

/** The coordinator's URL in the CI_* variables, as GitLab would send them. */
function serverVariables(payload: JobPayload, url: string): JobPayload['variables'] {
  return payload.variables.map((v) =>
    v.key === 'CI_SERVER_URL'
      ? { ...v, value: url }
      : v.key === 'CI_JOB_URL'
        ? { ...v, value: v.value.replace('http://gitlab.example.com', url) }
        : v,
  );
}

function demoJobs(): DemoJob[] {
  const jobs: DemoJob[] = [];
  const repo = gitRepo();
  let id = 1;
  const add = (
    expect: DemoJob['expect'],
    what: string,
    opts: Parameters<typeof exampleJob>[1],
    after?: number,
  ): number => {
    const jobId = id++;
    jobs.push({ payload: exampleJob(jobId, opts), expect, what, ...(after ? { after } : {}) });
    return jobId;
  };
  if (repo) {
    add('success', 'clones this repository and lists it', {
      name: 'checkout',
      repoUrl: `file://${process.cwd()}`,
      sha: repo.sha,
      ref: repo.branch,
      script: ['git log -1 --format="checked out %h: %s"', 'ls | head -5'],
    });
  }
  // A two-stage pipeline: compile uploads its output as artifacts (an archive and a dotenv
  // report), unit-test runs in another sandbox and gets them back from the coordinator.
  const compile = add('success', 'builds dist/ and uploads it as artifacts', {
    name: 'compile',
    stage: 'build',
    script: [
      'mkdir -p dist',
      'echo "app built by job $CI_JOB_ID" > dist/app.txt',
      'echo "VERSION=1.0.$CI_JOB_ID" > build.env',
    ],
    artifacts: [
      {
        name: 'dist',
        paths: ['dist/'],
        when: 'on_success',
        artifact_type: 'archive',
        artifact_format: 'zip',
      },
      { paths: ['build.env'], when: 'on_success', artifact_type: 'dotenv', artifact_format: 'gzip' },
    ],
  });
  add(
    'success',
    "tests compile's artifacts in another sandbox",
    {
      name: 'unit-test',
      stage: 'test',
      dependencies: [{ id: compile, name: 'compile' }],
      script: ['cat dist/app.txt', 'echo "testing version $VERSION"'],
    },
    compile,
  );
  for (const n of [1, 2]) {
    add('success', 'runs a short build', {
      name: `build-${n}`,
      script: ['echo "building on $(hostname)"', 'sleep 2', 'echo done'],
    });
  }
  // The same cached build twice: the first run fetches its deps and saves them as its cache, the
  // second (queued once the first is done, so it may land in another sandbox) restores them.
  const cached = { name: 'cached-build', script: DEPS_SCRIPT };
  const firstRun = add('success', 'fetches its deps and saves them as its cache', cached);
  add('success', 'second run: restores the deps from the cache', cached, firstRun);
  for (const j of jobs) if (j.payload.job_info.name === 'cached-build') j.payload.cache = DEMO_CACHE;
  jobs.at(-1)!.cacheHit = true;
  add('success', 'prints a masked variable', {
    name: 'masked',
    script: ['echo "the secret is $API_KEY"'],
    variables: { API_KEY: { value: 'demo-Secret-1234', masked: true } },
  });
  add('failed', 'fails with exit code 3 (reported as script_failure)', {
    name: 'failing',
    script: ['echo about to fail', 'exit 3'],
  });
  return jobs;
}

/** The repository runfleet runs in, if it is one with a branch checked out: the checkout job clones it. */
function gitRepo(): { sha: string; branch: string } | undefined {
  const git = (...args: string[]) =>
    execFileSync('git', args, { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  try {
    return { sha: git('rev-parse', 'HEAD'), branch: git('symbolic-ref', '--short', 'HEAD') };
  } catch {
    return undefined;
  }
}

async function followLoop(
  daemon: { status(): Promise<{ fleets: { name: string; instances: { state: string }[] }[] }> },
  coordinator: { jobs(): { id: number; state: string }[] },
  jobs: DemoJob[],
  events: CoordinatorEvent[],
  timeoutMs: number,
  io: Io,
  style: ReturnType<typeof styler>,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const names = new Map(jobs.map((j) => [j.payload.id, j.payload.job_info.name]));
  let lastFleet = '';
  let shown = 0;
  let peak = 0;
  const t0 = Date.now();
  const stamp = () => style.dim(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s]`);
  for (;;) {
    for (; shown < events.length; shown++) {
      const e = events[shown]!;
      if (e.type === 'assigned')
        io.out(`${stamp()} job #${e.jobId} ${names.get(e.jobId)}: picked up by the runner`);
      if (e.type === 'finished') {
        const detail =
          e.state === 'success'
            ? style.green('success')
            : style.red(
                `failed (${e.failureReason ?? 'unknown'}${e.exitCode ? `, exit code ${e.exitCode}` : ''})`,
              );
        io.out(`${stamp()} job #${e.jobId} ${names.get(e.jobId)}: ${detail}`);
      }
    }
    const status = await daemon.status();
    const fleet = status.fleets.find((f) => f.name === 'demo');
    const instances = fleet?.instances ?? [];
    peak = Math.max(peak, instances.length);
    const counts = summarize(instances.map((i) => i.state));
    if (counts !== lastFleet) {
      io.out(`${stamp()} fleet demo: ${instances.length} instance(s)${counts ? ` (${counts})` : ''}`);
      lastFleet = counts;
    }
    const finished = coordinator.jobs().filter((j) => j.state === 'success' || j.state === 'failed').length;
    if (finished === jobs.length && shown === events.length && instances.length === 0 && peak > 0)
      return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** What the job's log says its cache did: `hit`, `miss, saved`, `unchanged`, or empty without a cache. */
function cacheOutcome(j: DemoJob, log: string | undefined): string {
  if (!j.payload.cache?.length || !log) return '';
  const restored = log.includes('Successfully extracted cache');
  const saved = /Uploading cache\.zip to |Cache will be stored only locally/.test(log);
  const unchanged = log.includes('Archive is up to date!');
  return [restored ? 'hit' : 'miss', saved ? 'saved' : unchanged ? 'unchanged' : '']
    .filter(Boolean)
    .join(', ');
}

/**
 * What the pipeline passed from one job to the next, as GitLab stored it: the artifacts compile
 * uploaded and what unit-test printed from them.
 */
/** A stored job log's lines as the job printed them, without the per-line timestamps (FF_TIMESTAMPS). */
function logLines(log: string | undefined): string[] {
  return (log ?? '').split('\n').map((l) => parseTimestampedLine(l)?.text ?? l);
}

function pipelineSummary(
  coordinator: { job(id: number): DemoJobView | undefined },
  jobs: DemoJob[],
): string[] {
  const byName = (name: string) => jobs.find((j) => j.payload.job_info.name === name);
  const compile = byName('compile');
  const test = byName('unit-test');
  const built = compile ? coordinator.job(compile.payload.id) : undefined;
  const tested = test ? coordinator.job(test.payload.id) : undefined;
  if (!built || !tested) return [];
  const uploads = built.artifacts.map(
    (a) => `${a.filename} (${a.query['artifact_type'] ?? 'archive'}, ${a.size} bytes)`,
  );
  const seen = logLines(tested.log)
    .filter((l) => /^(app built by job|testing version)/.test(l.trim()))
    .map((l) => l.trim());
  return [
    `\nPipeline: compile uploaded ${uploads.join(' and ') || 'nothing'};`,
    `  unit-test downloaded the archive into its own sandbox and printed: ${seen.map((l) => JSON.stringify(l)).join(', ') || 'nothing'}`,
  ];
}

interface DemoJobView {
  state: string;
  failure_reason?: string;
  exit_code?: number;
  checksumOk?: boolean;
  log: string;
  artifacts: { filename: string; size: number; query: Record<string, string> }[];
}

function summarize(states: string[]): string {
  const by = new Map<string, number>();
  for (const s of states) by.set(s, (by.get(s) ?? 0) + 1);
  return [...by].map(([s, n]) => `${n} ${s}`).join(', ');
}

function report(
  coordinator: { job(id: number): DemoJobView | undefined },
  jobs: DemoJob[],
  io: Io,
  style: ReturnType<typeof styler>,
): boolean {
  let all = true;
  const rows = jobs.map((j) => {
    const v = coordinator.job(j.payload.id);
    const cache = cacheOutcome(j, v?.log);
    const expected =
      v?.state === j.expect && v.checksumOk === true && (!j.cacheHit || cache.startsWith('hit'));
    all &&= expected;
    const as = expected
      ? style.green('as expected')
      : style.red(`expected ${j.expect}${j.cacheHit ? ' and a cache hit' : ''}`);
    return [
      `#${j.payload.id}`,
      j.payload.job_info.name,
      v?.state ?? 'missing',
      v?.failure_reason ?? '',
      v?.checksumOk ? 'ok' : 'MISMATCH',
      cache,
      as,
      j.what,
    ];
  });
  io.out(
    `\n${table(['JOB', 'NAME', 'STATE', 'FAILURE REASON', 'LOG CRC32', 'CACHE', 'RESULT', 'WHAT IT DOES'], rows)}`,
  );
  for (const line of pipelineSummary(coordinator, jobs)) io.out(line);
  const masked = jobs.find((j) => j.payload.job_info.name === 'masked');
  const log = masked ? coordinator.job(masked.payload.id)?.log : undefined;
  const line = logLines(log).find((l) => l.includes('the secret is') && !l.includes('$ echo'));
  if (line) io.out(`\nThe masked job's log, as GitLab stored it: ${JSON.stringify(line.trim())}`);
  const second = jobs.find((j) => j.cacheHit);
  const hit = second ? coordinator.job(second.payload.id)?.log : undefined;
  const from = logLines(hit).find((l) => l.includes('deps from the cache:') && !l.includes('echo'));
  if (from) io.out(`The second cached build's log: ${JSON.stringify(from.trim())}`);
  for (const j of jobs) {
    const v = coordinator.job(j.payload.id);
    if (v && v.state !== j.expect)
      io.out(`\nLog of job #${j.payload.id} ${j.payload.job_info.name}:\n${v.log}`);
  }
  return all;
}
