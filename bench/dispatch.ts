/**
 * bench/dispatch: the job path over real SSH on loopback, each figure beside a floor measured in
 * the same run. The coordinator runs in a child process (bench/coordinator-child.ts), so CPU
 * figures are the manager's. Phases (all by default, or name some: `-- latency fleet intake`):
 *
 * latency  job queued → first log line at the manager (floor: a bare ssh2 `echo` on a warm
 *          connection + one HTTP round trip), and → that line stored at the coordinator for a job
 *          that runs 5 s (floor: the line at the manager). Targets: ≤ 3× floor; p50 < 300 ms.
 * fleet    1,000 × `sleep 1` across 20 sshd × 50 slots: jobs that succeeded, wall time, manager
 *          CPU per job, instance CPU per job (sshd and everything under it); floor: the same
 *          1,000 execs with a bare ssh2 client. Targets: 1,000/1,000, wall ≤ 2× floor,
 *          manager ≤ 2 ms/job, instance ≤ 2× floor. Runs in rounds (BENCH_FLEET_ROUNDS, default
 *          2): round 1 right after start, JIT compilation included, round 2 warm, as a daemon runs.
 * intake   1,000 queued jobs assigned, coordinator adding 50 ms per request, request_concurrency
 *          16, the fleet's check_interval runfleet's default (BENCH_CHECK_INTERVAL=3s for GitLab
 *          Runner's) (target < 5 s); then job requests per second while the queue is empty (target ≤ 2);
 *          then the same with the jobs' work held, against a long-polling coordinator, and with
 *          the jobs queued before the manager starts.
 *
 * The fleet phase also says where its wall goes (when jobs were assigned and finished, and per job
 * assigned → first log line → last log line → finished); BENCH_SLOWEST=1 prints the slowest job's
 * log, BENCH_DEBUG=1 the manager's log, BENCH_PROFILE=<dir> writes CPU profiles of the manager
 * over the 1,000 jobs of the last round (fleet.cpuprofile) and over the intake window (intake.cpuprofile), for Chrome
 * DevTools; BENCH_HEAP_PROFILE=<dir> a sampling heap profile of the same windows (every allocation,
 * collected ones included: fleet.heapprofile). Each sshd has its own /tmp/runfleet-builds (a private mount, so it needs root), as 20
 * machines would.
 *
 * Run: npm run bench:dispatch [-- phase…]   (needs openssh-server; bounded; loopback only)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Client } from 'ssh2';
import { createPinoLogger, silentLogger } from '../src/util/logger.js';
import { systemTime } from '../src/util/time.js';
import { DEFAULT_CHECK_INTERVAL, type Fleet } from '../src/model/fleet.js';
import { ProviderRegistry } from '../src/providers/registry.js';
import { createStaticProvider } from '../src/providers/static/index.js';
import { KnownHostsFile } from '../src/runtime/connectors/known-hosts.js';
import { SshConnectorPool } from '../src/runtime/connectors/ssh-connector.js';
import { JobIntake } from '../src/runtime/job-intake.js';
import { REMOTE_BUILDS_DIR } from '../src/runtime/executor-factory.js';
import { GitlabClient } from '../src/runtime/gitlab/client.js';
import { LedgerWriter, SlotScheduler } from '../src/runtime/slots/index.js';
import { openSqliteStore } from '../src/store/index.js';
import { startSshd, type SshdInstance } from '../test/helpers/topology/sshd.js';
import { fleetSpec } from '../test/helpers/fake-state.js';

const TOKEN = 'glrt-benchdispatch000000';
/** The fleets' gitlab.check_interval: runfleet's default unless BENCH_CHECK_INTERVAL names one (e.g. 3s, GitLab Runner's). */
const CHECK_INTERVAL = process.env.BENCH_CHECK_INTERVAL ?? DEFAULT_CHECK_INTERVAL;
const MARKER = 'dispatch-marker';
const MARKER_BYTES = Buffer.from(MARKER);
const teardowns: (() => unknown)[] = [];
const owner = { teardown: (fn: () => unknown) => void teardowns.push(fn) };
const at = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- the coordinator child ----------------------------------------------------------------------

interface ChildEvent {
  ev: string;
  id?: number;
  at?: number;
  url?: string;
  n?: number;
  state?: string;
  log?: string;
  firstLine?: number;
  lastLine?: number;
  kinds?: Record<string, number>;
}

class RemoteCoordinator {
  readonly events: ChildEvent[] = [];
  /** The events by kind: `count()` runs on every event, and must not scan all of them each time. */
  private readonly byKind = new Map<string, ChildEvent[]>();
  /** Checked after every event; several events can arrive in one tick, so none is one-shot. */
  private waiters: ((e: ChildEvent) => boolean)[] = [];
  private watchers = new Set<() => void>();
  url = '';
  get pid(): number | undefined {
    return this.child.pid;
  }
  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m) => {
      const e = m as ChildEvent;
      this.events.push(e);
      const kind = this.byKind.get(e.ev) ?? [];
      if (kind.length === 0) this.byKind.set(e.ev, kind);
      kind.push(e);
      this.waiters = this.waiters.filter((w) => !w(e));
      for (const w of [...this.watchers]) w();
    });
  }

  static async start(o: { longPollMs: number; requestDelayMs?: number; intervalSeconds?: number }) {
    const child = fork(new URL('./coordinator-child.ts', import.meta.url).pathname, [], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const c = new RemoteCoordinator(child);
    const started = c.next((e) => e.ev === 'started');
    child.send({
      op: 'start',
      token: TOKEN,
      longPollMs: o.longPollMs,
      requestDelayMs: o.requestDelayMs ?? 0,
      intervalSeconds: o.intervalSeconds ?? 3,
    });
    c.url = (await started).url!;
    return c;
  }

  next(pred: (e: ChildEvent) => boolean, timeoutMs = 180_000): Promise<ChildEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('coordinator event timeout')), timeoutMs);
      this.waiters.push((e) => {
        if (!pred(e)) return false;
        clearTimeout(timer);
        resolve(e);
        return true;
      });
    });
  }

  /** Resolves once `cond` holds over the events so far (checked on each event), or on timeout. */
  until(cond: () => boolean, timeoutMs = 300_000): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        this.watchers.delete(check);
        clearTimeout(timer);
        resolve(ok);
      };
      const check = () => cond() && done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.watchers.add(check);
      check();
    });
  }

  count(ev: string, ids?: (id: number) => boolean): number {
    const xs = this.byKind.get(ev) ?? [];
    if (!ids) return xs.length;
    let n = 0;
    for (const e of xs) if (ids(e.id!)) n++;
    return n;
  }

  async enqueue(jobs: { id: number; script: string[] }[]): Promise<number> {
    const done = this.next((e) => e.ev === 'enqueued');
    this.child.send({ op: 'enqueue', jobs });
    return (await done).at!;
  }

  async requests(): Promise<number> {
    return (await this.requestCounts()).n!;
  }

  /** Job requests so far (`n`), and all requests by method and path (`kinds`). */
  requestCounts(): Promise<ChildEvent> {
    const r = this.next((e) => e.ev === 'requests');
    this.child.send({ op: 'requests' });
    return r;
  }

  async log(id: number): Promise<string> {
    const r = this.next((e) => e.ev === 'log' && e.id === id);
    this.child.send({ op: 'log', id });
    return (await r).log ?? '';
  }

  async close(): Promise<void> {
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.send({ op: 'close' });
    await exited;
  }
}

// ---- the manager side ---------------------------------------------------------------------------

/** A count of open requests over time: its highest value and its time-weighted mean since `mark()`. */
class InFlight {
  private n = 0;
  private since = at();
  private last = at();
  private area = 0;
  private top = 0;
  change(d: number): void {
    const now = at();
    this.area += this.n * (now - this.last);
    this.last = now;
    this.n += d;
    this.top = Math.max(this.top, this.n);
  }
  mark(): void {
    this.since = this.last = at();
    this.area = 0;
    this.top = this.n;
  }
  /** Mean and highest since `mark()`. */
  read(): { mean: number; max: number } {
    this.change(0);
    return { mean: this.area / Math.max(1, this.last - this.since), max: this.top };
  }
}

async function manager(
  instances: SshdInstance[],
  capacityPerInstance: number,
  coordinator: RemoteCoordinator,
  o: {
    requestConcurrency?: number;
    checkIntervalMs?: number;
    /** Jobs wait for their slot until this resolves (their `running` PUT and trace loop go on). */
    holdJobs?: Promise<unknown>;
  } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), 'rf-bench-'));
  const keyPath = join(dir, 'id');
  writeFileSync(keyPath, instances[0]!.privateKey, { mode: 0o600 });
  const hosts = instances.map((i) => `${i.host}:${i.port}`);
  const fleet: Fleet = fleetSpec({
    name: 'bench',
    executor: 'instance',
    docker: null,
    provider: { type: 'static', hosts },
    capacity_per_instance: capacityPerInstance,
    max_instances: hosts.length,
    // The bench's sshds allow MaxSessions 64: say so, as the README advises, so 50 slots share one
    // connection per instance as the bare-ssh2 floor does.
    connector: {
      username: 'root',
      key_path: keyPath,
      use_static_credentials: true,
      port: 2222,
      max_sessions: 64,
    },
    policy: [{ idle_count: 1, preemptive_mode: true }],
    gitlab: {
      url: coordinator.url,
      request_concurrency: o.requestConcurrency ?? 1,
      check_interval: CHECK_INTERVAL,
    },
  });
  const store = await openSqliteStore(':memory:');
  const provider = createStaticProvider({ hosts, connectorFor: () => fleet.connector });
  const scheduler = new SlotScheduler({ ledger: new LedgerWriter(store), time: systemTime });
  scheduler.configureFleet('bench', {
    capacityPerInstance,
    maxUseCount: 0,
    maxInstances: hosts.length,
    acquireTimeoutMs: 60_000,
  });
  for (const h of hosts) scheduler.addReadyInstance('bench', h, 0);
  const hold = o.holdJobs;
  if (hold) {
    const acquire = scheduler.acquire.bind(scheduler);
    scheduler.acquire = async (target, signal) => {
      await hold;
      return acquire(target, signal);
    };
  }
  for (const inst of instances.slice(1))
    writeFileSync(
      join(inst.dir, 'authorized_keys'),
      readFileSync(join(instances[0]!.dir, 'authorized_keys')),
    );
  const ssh = new SshConnectorPool({ knownHosts: new KnownHostsFile(join(dir, 'known_hosts.json')) });
  const firstLine = new Map<number, number>();
  const logger = process.env.BENCH_DEBUG ? createPinoLogger({ level: 'debug' }) : silentLogger;
  const client = new GitlabClient({
    url: coordinator.url,
    token: TOKEN,
    systemId: 's_00000000bench',
    version: 'bench',
  });
  // Job requests open at once, over time: the intake phase's in-flight figures.
  const inFlight = new InFlight();
  const requestJob = client.requestJob.bind(client);
  client.requestJob = async (signal) => {
    inFlight.change(+1);
    try {
      return await requestJob(signal);
    } finally {
      inFlight.change(-1);
    }
  };
  const runner = new JobIntake(fleet, {
    scheduler,
    providers: new ProviderRegistry(() => provider),
    ssh,
    client,
    token: TOKEN,
    systemId: 's_00000000bench',
    version: 'bench',
    time: systemTime,
    logger,
    ...(o.checkIntervalMs === undefined ? {} : { checkIntervalMs: o.checkIntervalMs }),
    onOutput: (_f, id, chunk) => {
      // A Buffer needle made once: no string per chunk, and no needle per call (the bench's own
      // work counts as the manager's CPU).
      if (firstLine.has(id)) return;
      if (typeof chunk === 'string' ? chunk.includes(MARKER) : chunk.includes(MARKER_BYTES))
        firstLine.set(id, at());
    },
  });
  await runner.start();
  return {
    firstLine,
    inFlight,
    async stop() {
      await runner.stop(1000);
      await ssh.close();
      await store.close();
    },
  };
}

// ---- floors -------------------------------------------------------------------------------------

function rawClient(inst: SshdInstance, privateKey: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.once('ready', () => {
      c.setNoDelay(true);
      resolve(c);
    });
    c.once('error', reject);
    c.connect({ host: inst.host, port: inst.port, username: 'root', privateKey });
  });
}

function rawExec(c: Client, cmd: string, onData?: () => void): Promise<number | null> {
  return new Promise((resolve, reject) => {
    c.exec(cmd, (err, ch) => {
      if (err) return reject(err);
      let code: number | null = null;
      ch.on('exit', (c: number | null) => (code = c));
      ch.on('data', () => onData?.());
      ch.stderr.resume();
      ch.on('close', () => resolve(code));
    });
  });
}

function httpRoundTrip(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/api/v4/nothing`, { method: 'GET' }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end();
  });
}

/** utime+stime of a process and of its reaped children, ms. */
/**
 * CPU of `pid` and everything under it so far, ended or running: each process's own time plus
 * what it reaped (cutime, cstime), over the process and its live descendants. A live process's
 * children count once, in its reaped time or as live descendants; sshd's per-connection
 * processes, which reap a job's shells, live as long as their connection.
 */
function treeCpuMs(pid: number | undefined): number {
  if (!pid) return 0;
  const stat = new Map<number, { ppid: number; ticks: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const fields = readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1]!.split(' ');
      const ticks = [11, 12, 13, 14].reduce((s, i) => s + Number(fields[i]), 0);
      stat.set(Number(name), { ppid: Number(fields[1]), ticks });
    } catch {
      // ended while listed
    }
  }
  const under = (p: number): boolean => {
    for (let q = p, hops = 0; q > 1 && hops < 64; q = stat.get(q)?.ppid ?? 0, hops++)
      if (q === pid) return true;
    return false;
  };
  let ticks = 0;
  for (const [p, s] of stat) if (under(p)) ticks += s.ticks;
  return (ticks * 1000) / 100;
}
const instancesCpuMs = (xs: SshdInstance[]) => xs.reduce((s, i) => s + treeCpuMs(i.pid), 0);
/** CPU ticks (1/100 s) of each thread of this process, by thread id. */
function threadTicks(): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of readdirSync('/proc/self/task')) {
    try {
      const f = readFileSync(`/proc/self/task/${t}/stat`, 'utf8').split(') ')[1]!.split(' ');
      m.set(t, Number(f[11]) + Number(f[12]));
    } catch {
      // The thread ended between the listing and the read: it ran nothing worth counting.
    }
  }
  return m;
}
/**
 * CPU ms since `before` on the main (JavaScript) thread and on the others: V8's helper threads
 * (concurrent GC and compilation) and libuv's pool (crypto, file system).
 */
function threadsCpuMs(before: Map<string, number>): { main: number; others: number } {
  const out = { main: 0, others: 0 };
  for (const [t, v] of threadTicks()) {
    const ms = (v - (before.get(t) ?? 0)) * 10;
    if (t === String(process.pid)) out.main += ms;
    else out.others += ms;
  }
  return out;
}
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const f1 = (x: number) => x.toFixed(1);

/**
 * With BENCH_PROFILE=<dir>, a CPU profile of the manager over one measured window (node:inspector),
 * written as <dir>/<name>.cpuprofile for Chrome DevTools; a no-op without it.
 */
async function windowProfile(): Promise<{ stop(name: string): Promise<void> }> {
  const dir = process.env.BENCH_PROFILE;
  const heapDir = process.env.BENCH_HEAP_PROFILE;
  if (!dir && !heapDir) return { stop: async () => undefined };
  for (const d of [dir, heapDir]) if (d) mkdirSync(d, { recursive: true });
  const session = new Session();
  session.connect();
  if (dir) {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 500 });
    await session.post('Profiler.start');
  }
  if (heapDir) {
    // Every allocation sampled, including what the GC collected since: where the GC's work comes from.
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    } as never);
  }
  return {
    async stop(name) {
      if (dir) {
        const { profile } = await session.post('Profiler.stop');
        writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
      }
      if (heapDir) {
        const { profile } = await session.post('HeapProfiler.stopSampling');
        writeFileSync(join(heapDir, `${name}.heapprofile`), JSON.stringify(profile));
      }
      session.disconnect();
    },
  };
}

// ---- phases -------------------------------------------------------------------------------------

async function latency(): Promise<void> {
  const inst = await startSshd(owner);
  const coordinator = await RemoteCoordinator.start({ longPollMs: 30_000 });
  const m = await manager([inst], 10, coordinator, { checkIntervalMs: 5 });
  const samples: number[] = [];
  let id = 1;
  for (; id <= 25; id++) {
    const queued = await coordinator.enqueue([{ id, script: [`echo ${MARKER}`] }]);
    await coordinator.next((e) => e.ev === 'finished' && e.id === id);
    const first = m.firstLine.get(id);
    if (id > 5 && first !== undefined) samples.push(first - queued);
  }
  // Floor: a bare ssh2 exec of `echo` on a warm connection plus one HTTP round trip.
  const raw = await rawClient(inst, inst.privateKey);
  const floors: number[] = [];
  for (let i = 0; i < 25; i++) {
    const t0 = at();
    await httpRoundTrip(coordinator.url);
    let first = 0;
    await rawExec(raw, `echo ${MARKER}`, () => (first ||= at()));
    if (i >= 5) floors.push(first - t0);
  }
  raw.end();
  console.log('job queued -> first log line at the manager, warm SSH instance');
  console.log(
    `  runfleet p50 ${f1(pct(samples, 50))} ms  p90 ${f1(pct(samples, 90))} ms   floor (ssh2 echo + 1 HTTP) p50 ${f1(pct(floors, 50))} ms   ratio ${f1(pct(samples, 50) / pct(floors, 50))}x (target <= 3x)`,
  );

  // A 5 s job: when does its first line reach GitLab?
  const queuedAt = new Map<number, number>();
  for (let k = 0; k < 8; k++, id++) {
    queuedAt.set(id, await coordinator.enqueue([{ id, script: [`echo ${MARKER}`, 'sleep 5'] }]));
    await sleep(400);
  }
  const ended = () => coordinator.events.filter((e) => e.ev === 'finished' && queuedAt.has(e.id!)).length;
  for (let i = 0; i < 600 && ended() < queuedAt.size; i++) await sleep(100);
  const stored: number[] = [];
  const atManager: number[] = [];
  for (const [jid, queued] of queuedAt) {
    const e = coordinator.events.find((x) => x.ev === 'trace' && x.id === jid);
    stored.push(e && (e.log ?? '').includes(MARKER) ? e.at! - queued : NaN);
    atManager.push((m.firstLine.get(jid) ?? NaN) - queued);
  }
  console.log('job queued -> first log line stored at the coordinator (job runs 5 s)');
  console.log(
    `  runfleet p50 ${f1(pct(stored, 50))} ms  max ${f1(Math.max(...stored))} ms   floor (line at the manager) p50 ${f1(pct(atManager, 50))} ms   (target p50 < 300 ms)`,
  );
  await m.stop();
  await coordinator.close();
}

async function startFleetSshds(n: number): Promise<SshdInstance[]> {
  const xs: SshdInstance[] = [];
  // 20 machines do not share a builds dir: jobs in slot k of two instances would clean up each
  // other's files.
  for (let i = 0; i < n; i++) xs.push(await startSshd(owner, { privateDirs: [REMOTE_BUILDS_DIR] }));
  return xs;
}

/**
 * One round: 1,000 jobs, then the floor's 1,000 execs. Round 1 runs right after start (JIT
 * compilation of the job path included); later rounds show the steady state of a daemon that has
 * run jobs before.
 */
async function fleet(instances: SshdInstance[], round: number): Promise<void> {
  const N = 1000;
  const slots = 50;
  // Floor: a bare ssh2 client, one connection per sshd, 50 execs at a time on each.
  const key = instances[0]!.privateKey;
  for (const inst of instances.slice(1))
    writeFileSync(
      join(inst.dir, 'authorized_keys'),
      readFileSync(join(instances[0]!.dir, 'authorized_keys')),
    );
  let inst0 = instancesCpuMs(instances);
  let cpu0 = cpuMs();
  let t0 = at();
  const clients = await Promise.all(instances.map((i) => rawClient(i, key)));
  let next = 0;
  let rawOk = 0;
  await Promise.all(
    clients.flatMap((c) =>
      Array.from({ length: slots }, async () => {
        while (next < N) {
          next++;
          if ((await rawExec(c, 'sleep 1').catch(() => -1)) === 0) rawOk++;
        }
      }),
    ),
  );
  const rawWall = (at() - t0) / 1000;
  const rawCpu = (cpuMs() - cpu0) / N;
  for (const c of clients) c.end();
  await sleep(500);
  const rawInst = (instancesCpuMs(instances) - inst0) / N;

  const coordinator = await RemoteCoordinator.start({ longPollMs: 30_000 });
  const m = await manager(instances, slots, coordinator, { requestConcurrency: 16, checkIntervalMs: 50 });
  await sleep(200);
  const profile = await windowProfile();
  inst0 = instancesCpuMs(instances);
  cpu0 = cpuMs();
  const split0 = process.cpuUsage();
  const threads0 = threadTicks();
  t0 = at();
  const inRun = (id: number) => id >= 10_000 && id < 10_000 + N;
  await coordinator.enqueue(Array.from({ length: N }, (_, i) => ({ id: 10_000 + i, script: ['sleep 1'] })));
  await coordinator.until(() => coordinator.count('finished', inRun) >= N, 300_000);
  const wall = (at() - t0) / 1000;
  const cpu = (cpuMs() - cpu0) / N;
  const split = process.cpuUsage(split0);
  const threads = threadsCpuMs(threads0);
  await profile.stop('fleet');
  await m.stop();
  await sleep(500);
  const inst = (instancesCpuMs(instances) - inst0) / N;
  const ok = coordinator.events.filter(
    (e) => e.ev === 'finished' && inRun(e.id!) && e.state === 'success',
  ).length;
  const failure = coordinator.events.find(
    (e) => e.ev === 'finished' && inRun(e.id!) && e.state !== 'success',
  );
  if (failure) console.log(`  first failure (job ${failure.id}):\n${failure.log}`);
  console.log(
    `${N} x sleep 1 across ${instances.length} sshd x ${slots} slots, round ${round}${round === 1 ? ' (cold: the first jobs since start)' : ' (warm)'}`,
  );
  console.log(
    `  runfleet ${ok}/${N} ok  wall ${f1(wall)} s  manager CPU ${cpu.toFixed(2)} ms/job  instance CPU ${cpu_(inst)} ms/job`,
  );
  console.log(
    `    manager CPU ms/job: user ${cpu_(split.user / 1000 / N)}, system ${cpu_(split.system / 1000 / N)}; main thread ${cpu_(threads.main / N)}, other threads (GC, JIT, libuv) ${cpu_(threads.others / N)}`,
  );
  console.log(
    `  floor (bare ssh2) ${rawOk}/${N} ok  wall ${f1(rawWall)} s  client CPU ${rawCpu.toFixed(2)} ms/job  instance CPU ${cpu_(rawInst)} ms/job`,
  );
  console.log(
    `  ratios: wall ${f1(wall / rawWall)}x (target <= 2x)  instance CPU ${f1(inst / rawInst)}x (target <= 2x)  manager CPU target <= 2 ms/job`,
  );
  // Where the wall goes: when jobs were assigned (intake) and when they finished.
  const since = (ev: string) =>
    coordinator.events.filter((e) => e.ev === ev && inRun(e.id!)).map((e) => (e.at! - t0) / 1000);
  const spread = (xs: number[]) =>
    `10% ${f1(pct(xs, 10))} s, 50% ${f1(pct(xs, 50))} s, 90% ${f1(pct(xs, 90))} s, last ${f1(Math.max(...xs))} s`;
  console.log(`  assigned by: ${spread(since('assigned'))}`);
  console.log(`  finished by: ${spread(since('finished'))}`);
  const assignedAt = new Map(
    coordinator.events.filter((e) => e.ev === 'assigned' && inRun(e.id!)).map((e) => [e.id!, e.at!]),
  );
  const ran = coordinator.events
    .filter((e) => e.ev === 'finished' && assignedAt.has(e.id!))
    .map((e) => (e.at! - assignedAt.get(e.id!)!) / 1000);
  console.log(`  assigned -> finished per job: ${spread(ran)}`);
  const fin = coordinator.events.filter((e) => e.ev === 'finished' && assignedAt.has(e.id!) && e.firstLine);
  const part = (f: (e: ChildEvent) => number) => spread(fin.map((e) => f(e) / 1000));
  console.log(`    assigned -> first log line: ${part((e) => e.firstLine! - assignedAt.get(e.id!)!)}`);
  console.log(`    first -> last log line:     ${part((e) => e.lastLine! - e.firstLine!)}`);
  console.log(`    last log line -> finished:  ${part((e) => e.at! - e.lastLine!)}`);
  const kinds = (await coordinator.requestCounts()).kinds ?? {};
  console.log(
    `  HTTP requests per job: ${Object.entries(kinds)
      .map(([k, n]) => `${k} ${(n / N).toFixed(2)}`)
      .join(', ')}`,
  );
  if (process.env.BENCH_SLOWEST) {
    const slowest = fin.reduce((a, e) => (e.lastLine! - e.firstLine! > a.lastLine! - a.firstLine! ? e : a));
    console.log(`  the slowest job's log (job ${slowest.id}):\n${await coordinator.log(slowest.id!)}`);
  }
  await coordinator.close();
}
const cpu_ = (x: number) => x.toFixed(2);

/**
 * Floor of the intake phase: `concurrency` bare `node:http` loops on one keep-alive agent, each
 * POSTing `jobs/request` until it gets no job, against a coordinator like runfleet's (+50 ms) with
 * the same jobs queued. Nothing is run or reported. Resolves with seconds from queued to the
 * last assignment, as runfleet's figure is measured.
 */
async function bareIntake(n: number, concurrency: number): Promise<number> {
  const coordinator = await RemoteCoordinator.start({ longPollMs: 0, requestDelayMs: 50 });
  const { info } = new GitlabClient({
    url: coordinator.url,
    token: TOKEN,
    systemId: 's_0000000floor',
    version: 'bench',
  });
  const body = Buffer.from(JSON.stringify({ info, token: TOKEN, system_id: 's_0000000floor' }));
  const agent = new Agent({ keepAlive: true });
  const post = () =>
    new Promise<number>((resolve, reject) => {
      const req = request(
        `${coordinator.url}/api/v4/jobs/request`,
        {
          method: 'POST',
          agent,
          headers: {
            'Content-Type': 'application/json',
            'Content-Length': body.length,
            'RUNNER-TOKEN': TOKEN,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            if (res.statusCode === 201) JSON.parse(Buffer.concat(chunks).toString('utf8'));
            resolve(res.statusCode ?? 0);
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const t0 = await coordinator.enqueue(
    Array.from({ length: n }, (_, i) => ({ id: 30_000 + i, script: ['true'] })),
  );
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while ((await post()) === 201);
    }),
  );
  const last = Math.max(...coordinator.events.filter((e) => e.ev === 'assigned').map((e) => e.at!));
  agent.destroy();
  await coordinator.close();
  return (last - t0) / 1000;
}

async function intake(instances: SshdInstance[]): Promise<void> {
  const N = 1000;
  const floorCpu0 = cpuMs();
  const floorS = await bareIntake(N, 16);
  const floorCpu = (cpuMs() - floorCpu0) / N;
  const coordinator = await RemoteCoordinator.start({ longPollMs: 0, requestDelayMs: 50 });
  const m = await manager(instances, 50, coordinator, { requestConcurrency: 16 });
  await sleep(3500);
  const inRun = (id: number) => id >= 20_000 && id < 20_000 + N;
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  const cpu0 = {
    manager: cpuMs(),
    coordinator: treeCpuMs(coordinator.pid),
    instances: instancesCpuMs(instances),
  };
  m.inFlight.mark();
  const profile = await windowProfile();
  loopDelay.enable();
  const t0 = await coordinator.enqueue(
    Array.from({ length: N }, (_, i) => ({ id: 20_000 + i, script: ['true'] })),
  );
  await coordinator.until(() => coordinator.count('assigned', inRun) >= N, 120_000);
  loopDelay.disable();
  await profile.stop('intake');
  const open = m.inFlight.read();
  const cpu = {
    manager: cpuMs() - cpu0.manager,
    coordinator: treeCpuMs(coordinator.pid) - cpu0.coordinator,
    instances: instancesCpuMs(instances) - cpu0.instances,
  };
  const assignedEvents = coordinator.events.filter((e) => e.ev === 'assigned' && inRun(e.id!));
  const assignS = (Math.max(...assignedEvents.map((e) => e.at!)) - t0) / 1000;
  const assigned = { size: assignedEvents.length };
  const times = assignedEvents.map((e) => (e.at! - t0) / 1000).sort((a, b) => a - b);
  const share = (q: number) => f1(times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? NaN);
  // Let them finish, then count job requests over 9 s of an empty queue.
  const allFinished = await coordinator.until(
    () => coordinator.count('finished', inRun) >= assigned.size,
    120_000,
  );
  if (!allFinished) console.log(`  only ${coordinator.count('finished', inRun)}/${N} finished within 120 s`);
  const failed = coordinator.events.filter(
    (e) => e.ev === 'finished' && inRun(e.id!) && e.state !== 'success',
  );
  if (failed.length > 0) {
    console.log(
      `  ${failed.length} jobs failed; the first (job ${failed[0]!.id}): ${JSON.stringify(failed[0]!.log)}`,
    );
  }
  await sleep(3500);
  const r0 = await coordinator.requests();
  await sleep(9000);
  const perS = ((await coordinator.requests()) - r0) / 9;
  const ms = (ns: number) => f1(ns / 1e6);
  console.log(
    `${N} queued jobs, coordinator +50 ms per request, request_concurrency 16, check_interval ${CHECK_INTERVAL}`,
  );
  console.log(
    `  assigned ${assigned.size}/${N} in ${f1(assignS)} s (target < 5 s)   floor (16 bare HTTP loops) ${f1(floorS)} s   ratio ${f1(assignS / floorS)}x`,
  );
  console.log(
    `  assigned by: first ${share(0)} s (the manager's next check_interval poll of an empty queue), 10% ${share(0.1)} s, 50% ${share(0.5)} s, 90% ${share(0.9)} s   job requests open: mean ${f1(open.mean)}, max ${open.max}`,
  );
  console.log(
    `  until the last assignment: CPU ms/job manager ${(cpu.manager / N).toFixed(2)}, coordinator ${(cpu.coordinator / N).toFixed(2)}, sshds ${(cpu.instances / N).toFixed(2)}; manager event-loop delay p50 ${ms(loopDelay.percentile(50))} ms p99 ${ms(loopDelay.percentile(99))} ms max ${ms(loopDelay.max)} ms`,
  );
  console.log(
    `  floor client CPU ${floorCpu.toFixed(2)} ms/job (its coordinator start and stop included)   empty queue: ${perS.toFixed(2)} requests/s (target <= 2)`,
  );
  await m.stop();
  await coordinator.close();
  // What runfleet's request path costs when the jobs it took do not compete for the event loop.
  const held = await intakeVariant(instances, N, { idBase: 40_000, holdJobs: true });
  console.log(
    `  with the jobs' work held until the last assignment: assigned in ${f1(held.last)} s (${f1(held.last / floorS)}x the floor); manager CPU ${held.cpu.toFixed(2)} ms/job (requests, running PUTs, trace loops)`,
  );
  // GitLab.com's setting (self-managed: off by default): an empty queue holds the request until a
  // job is queued, so nothing waits for check_interval. Beside the target's figure, not instead.
  const polled = await intakeVariant(instances, N, { idBase: 50_000, longPollMs: 30_000 });
  console.log(
    `  with long polling (GitLab Workhorse's apiCiLongPollingDuration): assigned in ${f1(polled.last)} s (${f1(polled.last / floorS)}x the floor), the first after ${f1(polled.first)} s`,
  );
  // A restart or a new fleet: the first request finds the jobs, no check_interval wait counts.
  const backlog = await intakeVariant(instances, N, { idBase: 60_000, backlog: true });
  console.log(
    `  queued before the manager starts (a backlog), from its start: assigned in ${f1(backlog.last)} s (${f1(backlog.last / floorS)}x the floor)`,
  );
}

/** One more intake run beside the target's (see `intake`); its jobs' ids start at `idBase`. */
interface IntakeVariant {
  idBase: number;
  /** Long-poll job requests, as GitLab behind Workhorse with `apiCiLongPollingDuration` set. */
  longPollMs?: number;
  /** Hold every job's work (instance, SSH, stages) until the last assignment. */
  holdJobs?: boolean;
  /** Queue the jobs before the manager starts (a backlog) and time from its start. */
  backlog?: boolean;
}

/**
 * The intake of `n` jobs (+50 ms per request, request_concurrency 16) in one variant: seconds from
 * queued (a backlog: from the manager's start) to the first and last assignment, and the manager's
 * CPU per job until the last.
 */
async function intakeVariant(
  instances: SshdInstance[],
  n: number,
  v: IntakeVariant,
): Promise<{ first: number; last: number; cpu: number }> {
  const coordinator = await RemoteCoordinator.start({ longPollMs: v.longPollMs ?? 0, requestDelayMs: 50 });
  const inRun = (id: number) => id >= v.idBase && id < v.idBase + n;
  const jobs = Array.from({ length: n }, (_, i) => ({ id: v.idBase + i, script: ['true'] }));
  let release = () => {};
  const holdJobs = v.holdJobs ? new Promise<void>((r) => (release = r)) : undefined;
  const start = () =>
    manager(instances, 50, coordinator, {
      requestConcurrency: 16,
      ...(holdJobs ? { holdJobs } : {}),
    });
  let m: Awaited<ReturnType<typeof manager>>;
  let t0: number;
  let cpu0: number;
  if (v.backlog) {
    await coordinator.enqueue(jobs);
    t0 = at();
    cpu0 = cpuMs();
    m = await start();
  } else {
    m = await start();
    await sleep(3500);
    cpu0 = cpuMs();
    t0 = await coordinator.enqueue(jobs);
  }
  await coordinator.until(() => coordinator.count('assigned', inRun) >= n, 120_000);
  const cpu = (cpuMs() - cpu0) / n;
  const times = coordinator.events
    .filter((e) => e.ev === 'assigned' && inRun(e.id!))
    .map((e) => (e.at! - t0) / 1000);
  release();
  await coordinator.until(() => coordinator.count('finished', inRun) >= n, 120_000);
  await m.stop();
  await coordinator.close();
  return { first: Math.min(...times), last: Math.max(...times), cpu };
}

const phases = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const want = (p: string) => phases.length === 0 || phases.includes(p);
try {
  if (want('latency')) await latency();
  if (want('fleet') || want('intake')) {
    const instances = await startFleetSshds(20);
    // BENCH_FLEET_ROUNDS: how many rounds of the fleet phase (see `fleet`). @default 2
    const rounds = Math.max(1, Number(process.env.BENCH_FLEET_ROUNDS ?? 2) || 2);
    if (want('fleet')) for (let r = 1; r <= rounds; r++) await fleet(instances, r);
    if (want('intake')) await intake(instances);
  }
} finally {
  for (const fn of teardowns.reverse()) await fn();
}
