// Reaction-time benchmark of the watch daemon (compiled dist; run `npm run build` first):
//  1. demand change -> provider.increase call, in process (target < 50 ms)
//  2. fleet file save -> provider.increase call, through chokidar and the reload settle
//     (target < 60 ms median), beside the floor: the bare chokidar event for the same save
// Uses the real local provider and SQLite store in a temp directory.
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { watch } from 'chokidar';
import { loadFleets } from '../dist/config/index.js';
import { Daemon } from '../dist/daemon/daemon.js';
import { watchFleetDir } from '../dist/daemon/config-watcher.js';
import { silentLogger } from '../dist/util/logger.js';
import { createLocalProvider } from '../dist/providers/local/index.js';
import { ProviderRegistry } from '../dist/providers/registry.js';
import { openSqliteStore } from '../dist/store/index.js';
import { LedgerWriter } from '../dist/store/ledger-writer.js';
import { SlotScheduler } from '../dist/runtime/slots/scheduler.js';
import { SshConnectorPool } from '../dist/runtime/connectors/ssh-connector.js';
import { KnownHostsFile } from '../dist/runtime/connectors/known-hosts.js';
import { connectorReadinessProbe } from '../dist/runtime/readiness-probe.js';
import { systemTime } from '../dist/util/time.js';

const dir = await mkdtemp(join(tmpdir(), 'runfleet-bench-'));
const fleets = join(dir, 'fleets');
await mkdir(fleets);
const fleetFile = join(fleets, 'bench.yaml');
const yaml = (idle) =>
  `name: bench\nprovider: { type: local }\ncapacity_per_instance: 1\nmax_instances: 200\n` +
  `scale_throttle: { limit: 1000, burst: 1000 }\npolicy:\n  - idle_count: ${idle}\n    idle_time: 1h\n`;
await writeFile(fleetFile, yaml(0));

const local = createLocalProvider({ stateDir: dir });
let onIncrease = () => undefined;
const provider = {
  ...local,
  increase(ref, n, signal) {
    onIncrease();
    return local.increase(ref, n, signal);
  },
};
const store = await openSqliteStore(join(dir, 'state.db'));
const ledger = new LedgerWriter(store);
const ssh = new SshConnectorPool({ knownHosts: new KnownHostsFile(join(dir, 'known_hosts.json')) });
const daemon = new Daemon({
  store,
  ledger,
  slots: new SlotScheduler({ ledger, time: systemTime }),
  probe: connectorReadinessProbe(ssh),
  providers: new ProviderRegistry(() => provider),
  loadConfig: () => loadFleets(fleets),
  logger: silentLogger,
  intervalMs: 3_600_000,
});
await daemon.start();
const nextIncrease = () => new Promise((resolve) => (onIncrease = () => resolve(performance.now())));

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return `median ${at(0.5).toFixed(1)} ms, p90 ${at(0.9).toFixed(1)} ms, max ${s[s.length - 1].toFixed(1)} ms (n=${s.length})`;
};

// 1. demand -> provider call
const demand = [];
for (let i = 0; i < 30; i++) {
  const called = nextIncrease();
  const t0 = performance.now();
  const job = daemon.slots.acquire('bench');
  demand.push((await called) - t0);
  await job; // the new instance is ready at once on the local provider; the job keeps it busy
}
console.log(`demand change -> provider.increase: ${stats(demand)}  (target < 50 ms)`);

// 2. file save -> provider call
const watcher = await watchFleetDir(fleets, () => daemon.reloadConfig(), { logger: silentLogger });
const bare = watch(fleets, { ignoreInitial: true });
await new Promise((resolve) => bare.once('ready', resolve));
let onEvent = () => undefined;
bare.on('all', () => onEvent());
const save = [];
const floor = [];
for (let i = 1; i <= 12; i++) {
  await sleep(300);
  const called = nextIncrease();
  const evented = new Promise((resolve) => (onEvent = () => resolve(performance.now())));
  const t0 = performance.now();
  await writeFile(fleetFile, yaml(i));
  floor.push((await evented) - t0);
  save.push((await called) - t0);
  await daemon.idle();
}
await bare.close();
console.log(`file save -> provider.increase: ${stats(save)}  (target median < 60 ms)`);
console.log(`  floor, file save -> chokidar event: ${stats(floor)}`);
await watcher.close();
await daemon.stop({ graceMs: 0 });
await store.close();
