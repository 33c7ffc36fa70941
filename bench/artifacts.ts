/**
 * bench/artifacts: artifacts through the runtime over loopback SSH (a real sshd), each figure
 * beside a floor measured in the same run. The coordinator runs in a child process.
 *
 * big     one artifact of --size-mb (default 1024 = 1 GiB) random data in --files (default 1,000)
 *         files: uploaded (find + tar over SSH → zip on the manager → streamed POST) and
 *         downloaded by a dependent job (GET → spooled zip → tar -x over SSH). Floor: `ssh host
 *         'tar -c dir' > /dev/null` (OpenSSH) plus one HTTP POST of as many bytes. Reported:
 *         throughput as a ratio to the floor (target ≥ 0.5) and the manager's RSS growth
 *         (target < 64 MB).
 * many    --jobs (default 50) jobs at once, each uploading --each-mb (default 20) MB.
 *
 * Run: npm run bench:artifacts [-- --size-mb 256 --files 250 --jobs 50 --each-mb 20]
 */
import { execFileSync, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type { ExampleJobOptions } from '../src/devtools/coordinator/example-job.js';
import { KnownHostsFile } from '../src/runtime/connectors/known-hosts.js';
import { SshConnectorPool } from '../src/runtime/connectors/ssh-connector.js';
import { ArtifactStages } from '../src/runtime/executors/artifact-stages.js';
import type { JobOutput } from '../src/runtime/executors/executor.js';
import { GitlabClient } from '../src/runtime/gitlab/client.js';
import type { JobPayload } from '../src/runtime/gitlab/job.js';
import { RUNFLEET_FEATURES } from '../src/runtime/gitlab/runner-info.js';
import { startSshd } from '../test/helpers/topology/sshd.js';

const TOKEN = 'glrt-benchartifacts0000000';
const MB = 1024 * 1024;
const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const sizeMb = flag('size-mb', 1024);
const files = flag('files', 1000);
const jobs = flag('jobs', 50);
const eachMb = flag('each-mb', 20);
const teardowns: (() => unknown)[] = [];
const owner = { teardown: (fn: () => unknown) => void teardowns.push(fn) };
const now = () => performance.now();

// ---- rss sampling -------------------------------------------------------------------------------
/** RSS growth over the run; `buffers` is the growth of Buffer memory at the RSS peak (mostly garbage not yet collected). */
function sampleRss(): { stop(): number; buffers: () => number; heap: () => number } {
  const base = process.memoryUsage();
  let peak = base.rss;
  let buffersAtPeak = base.arrayBuffers;
  let heapAtPeak = base.heapTotal;
  const sample = () => {
    const m = process.memoryUsage();
    if (m.rss > peak) [peak, buffersAtPeak, heapAtPeak] = [m.rss, m.arrayBuffers, m.heapTotal];
  };
  const timer = setInterval(sample, 50);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return (peak - base.rss) / MB;
    },
    buffers: () => (buffersAtPeak - base.arrayBuffers) / MB,
    heap: () => (heapAtPeak - base.heapTotal) / MB,
  };
}

/**
 * BENCH_PROF=DIR: a CPU profile of the manager over one phase, written to DIR/<phase>.cpuprofile
 * (open it in Chrome's DevTools); unset: nothing.
 */
async function startProfile(): Promise<((phase: string) => Promise<void>) | undefined> {
  const dir = process.env['BENCH_PROF'];
  if (!dir) return undefined;
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async (phase) => {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${phase}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  };
}

/** The manager's CPU since `from` (user + system), as "1.23 s". */
function cpuSeconds(from: NodeJS.CpuUsage): string {
  const d = process.cpuUsage(from);
  return `${((d.user + d.system) / 1e6).toFixed(2)} s`;
}

// ---- coordinator child --------------------------------------------------------------------------
const child = fork(new URL('./artifacts-coordinator-child.ts', import.meta.url).pathname, [], {
  execArgv: process.execArgv,
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
const next = (ev: string) =>
  new Promise<{ url?: string }>((resolve) => {
    const on = (m: unknown) => {
      const e = m as { ev: string; url?: string };
      if (e.ev !== ev) return;
      child.off('message', on);
      resolve(e);
    };
    child.on('message', on);
  });
teardowns.push(() => child.kill());
child.send({ op: 'start', token: TOKEN });
const url = (await next('started')).url!;

const enqueue = async (id: number, opts: ExampleJobOptions) => {
  child.send({ op: 'enqueue', id, opts });
  await next('enqueued');
};
/** Assigns the next job the way a runner asks for one, with runfleet's features. */
async function take(): Promise<JobPayload> {
  const res = await fetch(`${url}/api/v4/jobs/request`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token: TOKEN, info: { features: RUNFLEET_FEATURES } }),
  });
  if (res.status !== 201) throw new Error(`jobs/request answered ${res.status}`);
  return (await res.json()) as JobPayload;
}

// ---- instance -----------------------------------------------------------------------------------
const sshd = await startSshd(owner);
const work = mkdtempSync(join(sshd.dir, 'bench-'));
teardowns.push(() => rmSync(work, { recursive: true, force: true }));
const pool = new SshConnectorPool({ knownHosts: new KnownHostsFile(join(work, 'known_hosts.json')) });
teardowns.push(() => pool.close());
const connector = pool.get({
  host: sshd.host,
  port: sshd.port,
  username: sshd.username,
  privateKey: sshd.privateKey,
});
const client = new GitlabClient({ url, token: TOKEN, systemId: 's_bench0000000', version: '0.1.0' });

const log: string[] = [];
const output: JobOutput = {
  write: (c) => void log.push(String(c)),
  section: (_n, fn) => fn(),
};
const stagesFor = (job: JobPayload, projectDir: string) =>
  new ArtifactStages({ job, api: client.artifacts, connector, projectDir: () => projectDir });

function makeTree(root: string, totalMb: number, count: number): void {
  const per = Math.max(1, Math.floor((totalMb * MB) / count));
  for (let i = 0; i < count; i++) {
    const dir = join(root, 'out', `d${i % 20}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${i}.bin`), randomBytes(per));
  }
}

/** `ssh host 'tar -c dir' > /dev/null` with the OpenSSH client. */
function sshTarFloor(root: string): number {
  const t0 = now();
  execFileSync(
    'ssh',
    [
      '-i',
      join(sshd.dir, 'userkey'),
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'LogLevel=ERROR',
      '-p',
      String(sshd.port),
      `root@${sshd.host}`,
      `cd '${root}' && tar -c out`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return now() - t0;
}

/** One HTTP POST of `bytes` bytes (multipart, to the coordinator's upload endpoint). */
async function postFloor(job: JobPayload, bytes: number): Promise<number> {
  const chunk = randomBytes(MB);
  const t0 = now();
  await new Promise<void>((resolve, reject) => {
    const boundary = 'floorboundary';
    const req = request(
      `${url}/api/v4/jobs/${job.id}/artifacts?artifact_format=zip&artifact_type=archive`,
      {
        method: 'POST',
        headers: { 'JOB-TOKEN': job.token, 'Content-Type': `multipart/form-data; boundary=${boundary}` },
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 201 ? resolve() : reject(new Error(`POST ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
    req.write(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="floor.zip"\r\n\r\n`);
    let left = bytes;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n)))
          return void req.once('drain', pump);
      }
      req.end(`\r\n--${boundary}--\r\n`);
    };
    pump();
  });
  return now() - t0;
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const rate = (bytes: number, ms: number) => `${(bytes / MB / (ms / 1000)).toFixed(0)} MB/s`;
let id = 1;

// ---- big ----------------------------------------------------------------------------------------
{
  const root = join(work, 'big');
  const bytes = Math.floor((sizeMb * MB) / files) * files;
  console.log(`big: ${sizeMb} MiB in ${files} files (random data)`);
  makeTree(root, sizeMb, files);
  const build = id++;
  await enqueue(build, {
    name: 'build',
    artifacts: [{ name: 'big', paths: ['out/'], artifact_format: 'zip' }],
  });
  const buildJob = await take();
  const floorJob = id++;
  await enqueue(floorJob, { name: 'floor' });
  const floorPayload = await take();

  const tarMs = sshTarFloor(root);
  const postMs = await postFloor(floorPayload, bytes);
  const floorMs = tarMs + postMs;
  console.log(
    `  floor: ssh tar -c ${fmt(tarMs)} + HTTP POST ${fmt(postMs)} = ${fmt(floorMs)} (${rate(bytes, floorMs)})`,
  );

  let rss = sampleRss();
  let cpu0 = process.cpuUsage();
  let t0 = now();
  const failure = await stagesFor(buildJob, root).upload(true, output, new AbortController().signal);
  const upMs = now() - t0;
  const upCpu = cpuSeconds(cpu0);
  const upRss = rss.stop();
  if (failure) throw new Error(`upload failed: ${failure}\n${log.join('')}`);
  console.log(
    `  upload:   ${fmt(upMs)} (${rate(bytes, upMs)}), ratio to floor ${(floorMs / upMs).toFixed(2)} (target ≥ 0.5), manager CPU ${upCpu}, RSS growth ${upRss.toFixed(1)} MB (target < 64; Buffers ${rss.buffers().toFixed(1)} MB, JS heap ${rss.heap().toFixed(1)} MB of it)`,
  );

  const testId = id++;
  await enqueue(testId, { name: 'test', dependencies: [{ id: build, name: 'build' }] });
  const testJob = await take();
  const target = join(work, 'big-copy');
  rss = sampleRss();
  const profiler = await startProfile();
  cpu0 = process.cpuUsage();
  t0 = now();
  await stagesFor(testJob, target).download(output, new AbortController().signal);
  const downMs = now() - t0;
  const downCpu = cpuSeconds(cpu0);
  await profiler?.('download');
  const downRss = rss.stop();
  console.log(
    `  download: ${fmt(downMs)} (${rate(bytes, downMs)}), ratio to floor ${(floorMs / downMs).toFixed(2)} (target ≥ 0.5), manager CPU ${downCpu}, RSS growth ${downRss.toFixed(1)} MB (target < 64; Buffers ${rss.buffers().toFixed(1)} MB, JS heap ${rss.heap().toFixed(1)} MB of it)`,
  );
  const check = execFileSync('sh', [
    '-c',
    `cd '${work}' && diff -r big/out big-copy/out && echo same`,
  ]).toString();
  console.log(`  downloaded tree equals the original: ${check.trim() === 'same' ? 'yes' : 'NO'}`);
  rmSync(root, { recursive: true, force: true });
  rmSync(target, { recursive: true, force: true });
}

// ---- many ---------------------------------------------------------------------------------------
{
  const root = join(work, 'many');
  makeTree(root, eachMb, 20);
  console.log(`many: ${jobs} jobs at once, each uploading ${eachMb} MB (the same 20-file tree)`);
  const payloads: JobPayload[] = [];
  for (let i = 0; i < jobs; i++) {
    await enqueue(id++, { name: `many-${i}`, artifacts: [{ name: 'part', paths: ['out/'] }] });
    payloads.push(await take());
  }
  const rss = sampleRss();
  const t0 = now();
  const results = await Promise.all(
    payloads.map((p) => stagesFor(p, root).upload(true, output, new AbortController().signal)),
  );
  const ms = now() - t0;
  const growth = rss.stop();
  const ok = results.filter((r) => r === undefined).length;
  console.log(
    `  ${ok}/${jobs} uploaded in ${fmt(ms)} (${rate(jobs * eachMb * MB, ms)} in all), RSS growth ${growth.toFixed(1)} MB (target < 64; Buffers ${rss.buffers().toFixed(1)} MB, JS heap ${rss.heap().toFixed(1)} MB of it)`,
  );
  if (ok !== jobs) console.log(results.filter(Boolean).slice(0, 3).join('\n'));
}

child.send({ op: 'close' });
await next('closed').catch(() => undefined);
for (const fn of teardowns.reverse()) await fn();
process.exit(0);
