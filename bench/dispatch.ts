/**
 * bench/dispatch: the job runtime's dispatch latency and memory, over real SSH on loopback.
 *
 * 1. Latency from a job becoming available (queued at the GitLab-compatible coordinator) to its
 *    first log line arriving from a warm instance over SSH. Target: p50 < 50 ms.
 * 2. 200 concurrent jobs across 10 SSH instances (real sshd on 127.x.y.z). Target: manager
 *    under 400 MB RSS (the coordinator runs in the same process, so the figure includes it).
 *
 * Run: npm run bench:dispatch   (needs openssh-server; prints a table)
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { startCoordinator } from '../src/devtools/coordinator/server.js';
import { exampleJob } from '../src/devtools/coordinator/example-job.js';
import { silentLogger } from '../src/util/logger.js';
import { systemTime } from '../src/util/time.js';
import type { Fleet } from '../src/model/fleet.js';
import { ProviderRegistry } from '../src/providers/registry.js';
import { createStaticProvider } from '../src/providers/static/index.js';
import { KnownHostsFile } from '../src/runtime/connectors/known-hosts.js';
import { SshConnectorPool } from '../src/runtime/connectors/ssh-connector.js';
import { JobIntake } from '../src/runtime/job-intake.js';
import { GitlabClient } from '../src/runtime/gitlab/client.js';
import { LedgerWriter, SlotScheduler } from '../src/runtime/slots/index.js';
import { openSqliteStore } from '../src/store/index.js';
import { startSshd, type SshdInstance } from '../test/helpers/topology/sshd.js';
import { fleetSpec } from '../test/helpers/fake-state.js';

const TOKEN = 'glrt-benchdispatch000000';
const teardowns: (() => unknown)[] = [];
const owner = { teardown: (fn: () => unknown) => void teardowns.push(fn) };

async function harness(instances: SshdInstance[], capacityPerInstance: number) {
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
    connector: { username: 'root', key_path: keyPath, use_static_credentials: true, port: 2222 },
    policy: [{ idle_count: 1, preemptive_mode: true }],
  });
  const store = await openSqliteStore(':memory:');
  const provider = createStaticProvider({ hosts, connectorFor: () => fleet.connector });
  const scheduler = new SlotScheduler({
    ledger: new LedgerWriter(store),
    time: systemTime,
  });
  scheduler.configureFleet('bench', {
    capacityPerInstance,
    maxUseCount: 0,
    maxInstances: hosts.length,
    acquireTimeoutMs: 60_000,
  });
  for (const h of hosts) scheduler.addReadyInstance('bench', h, 0);
  // Same user key on every instance: copy it into each sshd's authorized_keys.
  for (const inst of instances.slice(1))
    writeFileSync(join(inst.dir, 'authorized_keys'), readPub(instances[0]!));
  const coordinator = await startCoordinator({ runnerTokens: [TOKEN], longPollMs: 30_000 });
  const ssh = new SshConnectorPool({ knownHosts: new KnownHostsFile(join(dir, 'known_hosts.json')) });
  const outputs = new Map<number, number>();
  const marker = 'dispatch-marker';
  const runner = new JobIntake(fleet, {
    scheduler,
    providers: new ProviderRegistry(() => provider),
    ssh,
    client: new GitlabClient({
      url: coordinator.url,
      token: TOKEN,
      systemId: 's_00000000bench',
      version: 'bench',
    }),
    token: TOKEN,
    systemId: 's_00000000bench',
    version: 'bench',
    time: systemTime,
    logger: silentLogger,
    checkIntervalMs: 5,
    onOutput: (_f, id, chunk) => {
      if (!outputs.has(id) && chunk.toString().includes(marker)) outputs.set(id, performance.now());
    },
  });
  await runner.start();
  return { coordinator, runner, outputs, marker, ssh, store };
}

function readPub(inst: SshdInstance): string {
  return readFileSync(join(inst.dir, 'authorized_keys'), 'utf8');
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

async function latency(): Promise<{ p50: number; p90: number; max: number; n: number }> {
  const inst = await startSshd(owner);
  const h = await harness([inst], 1);
  const samples: number[] = [];
  // Warm up: the first job opens the pooled SSH connection.
  for (let id = 1; id <= 25; id++) {
    const queued = performance.now();
    h.coordinator.enqueue(exampleJob(id, { script: [`echo ${h.marker}`] }));
    await h.coordinator.waitFor(id, (j) => j.state === 'success' || j.state === 'failed', 30_000);
    const first = h.outputs.get(id);
    if (id > 5 && first !== undefined) samples.push(first - queued);
  }
  await h.runner.stop(1000);
  await h.ssh.close();
  await h.coordinator.close();
  return { p50: pct(samples, 50), p90: pct(samples, 90), max: Math.max(...samples), n: samples.length };
}

async function concurrency(): Promise<{ jobs: number; seconds: number; peakRssMb: number; ok: number }> {
  const instances: SshdInstance[] = [];
  for (let i = 0; i < 10; i++) instances.push(await startSshd(owner));
  const h = await harness(instances, 20);
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const start = performance.now();
  const n = 200;
  for (let id = 1001; id < 1001 + n; id++)
    h.coordinator.enqueue(exampleJob(id, { script: ['sleep 2', 'echo done'] }));
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      h.coordinator.waitFor(1001 + i, (j) => j.state === 'success' || j.state === 'failed', 120_000),
    ),
  );
  const seconds = (performance.now() - start) / 1000;
  clearInterval(sampler);
  await h.runner.stop(1000);
  await h.ssh.close();
  await h.coordinator.close();
  return {
    jobs: n,
    seconds,
    peakRssMb: peak / 1024 / 1024,
    ok: results.filter((r) => r.state === 'success').length,
  };
}

try {
  const l = await latency();
  console.log('dispatch latency, job queued -> first log line from a warm SSH instance (loopback)');
  console.log(
    `  samples ${l.n}   p50 ${l.p50.toFixed(1)} ms   p90 ${l.p90.toFixed(1)} ms   max ${l.max.toFixed(1)} ms   (target p50 < 50 ms)`,
  );
  const c = await concurrency();
  console.log('200 concurrent jobs (sleep 2) across 10 SSH instances x 20 slots');
  console.log(
    `  ${c.ok}/${c.jobs} succeeded in ${c.seconds.toFixed(1)} s   peak RSS ${c.peakRssMb.toFixed(0)} MB (manager + coordinator; target < 400 MB)`,
  );
} finally {
  for (const fn of teardowns.reverse()) await fn();
}
