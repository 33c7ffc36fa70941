// Planner benchmark: plan time and memory for 10, 100 and 1,000 fleets of 100 instances each.
// Runs against the compiled planner (`npm run bench:plan` builds first). Each size runs in its own
// `node --expose-gc` child, so one size's garbage cannot inflate the next one's peak.
//
//   node bench/plan.mjs                 all sizes, prints a table
//   node bench/plan.mjs --child 1000    one size, prints JSON (used by the parent)
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const SIZES = [10, 100, 1000];
const INSTANCES_PER_FLEET = 100;
const RUNS = 7;
const TARGET = { ms: 500, mb: 300 };
const NOW = new Date('2026-03-27T10:00:00Z');
const { normalizeFleet } = await import('../dist/config/index.js');
const { groupRefFor } = await import('../dist/model/group.js');

/**
 * A fleet as a user would write it; `normalizeFleet` (the real config code) fills every default, so
 * the benchmark's specs never drift from the schema.
 */
function spec(name, i) {
  return normalizeFleet({
    name,
    provider:
      i % 3 === 0
        ? {
            type: 'aws',
            region: 'eu-west-1',
            create: { launch_template: { id: 'lt-0bench' }, subnets: ['subnet-0bench'] },
          }
        : { type: 'local' },
    executor: 'docker',
    docker: { image: 'alpine:3.20', pull_policy: 'if-not-present' },
    capacity_per_instance: 1 + (i % 4),
    max_instances: 120,
    max_use_count: i % 5 === 0 ? 1 : 0,
    policy: [
      { idle_count: 2 },
      {
        periods: ['* 8-17 * * mon-fri'],
        timezone: 'Europe/Berlin',
        idle_count: 10,
        idle_time: '30m',
        scale_factor: 0.5,
        scale_factor_limit: 20,
      },
    ],
    gitlab: { url: 'https://gitlab.example.com', token: { env: 'RUNFLEET_GITLAB_TOKEN' } },
    delete_instances_on_shutdown: true,
  });
}

/** Synthetic world: most fleets steady, some edited, some new, some removed; mixed instance states. */
function syntheticInput(fleets) {
  const desired = [];
  const observed = { fleets: [], groups: [], ledger: [], demand: {} };
  const minutesAgo = (m) => new Date(NOW.getTime() - m * 60_000).toISOString();
  for (let i = 0; i < fleets; i++) {
    const name = `fleet-${String(i).padStart(5, '0')}`;
    const want = spec(name, i);
    if (i % 10 !== 9) desired.push({ spec: want, source: { file: `fleets/${name}.yaml`, line: 1 } });
    if (i % 10 !== 8) {
      const before =
        i % 10 === 7
          ? { ...want, max_instances: 100, docker: { ...want.docker, image: 'alpine:3.19' } }
          : want;
      observed.fleets.push({ name, spec: before, hash: `h${i}`, applied_at: minutesAgo(600) });
    }
    const ref = groupRefFor(want);
    const instances = [];
    for (let j = 0; j < INSTANCES_PER_FLEET; j++) {
      const id = `${name}-i-${j}`;
      const state = j % 50 === 0 ? 'creating' : j % 33 === 0 ? 'deleting' : 'running';
      instances.push({ id, state, launched_at: minutesAgo(120 + j), healthy: j % 47 !== 0 });
      if (j % 20 !== 19) {
        const busy = j % 3 === 0;
        observed.ledger.push({
          fleet: name,
          id,
          provider: ref.provider,
          state: busy ? 'in_use' : 'ready',
          created_at: minutesAgo(120 + j),
          ready_at: minutesAgo(118 + j),
          use_count: j % 4,
          last_used_at: minutesAgo(j % 60),
          health_failures: 0,
          acquired: busy ? 1 : 0,
        });
      }
    }
    observed.groups.push({ ref, exists: true, settings: {}, instances, diagnostics: [] });
    observed.demand[name] = { acquired: 33, reserved: 2, pending: i % 7 };
  }
  return { desired, observed, now: NOW, basis: { observed: 'bench', fleets: 'bench' } };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mb = (bytes) => bytes / 1024 / 1024;

async function child(fleets) {
  const { planFleets, renderPlan } = await import('../dist/plan/index.js');
  const { diffAwsGroup } = await import('../dist/providers/aws/group-settings.js');
  const input = syntheticInput(fleets);
  // The group settings diff is the AWS provider's (gathered by observe); timed with the plan, as
  // it is part of what every plan costs.
  const groupChanges = () => {
    const out = {};
    const byName = new Map(input.observed.groups.map((g) => [g.ref.name, g]));
    for (const { spec } of input.desired)
      out[spec.name] = diffAwsGroup(spec, byName.get(groupRefFor(spec).name));
    return out;
  };
  globalThis.gc();
  const base = process.memoryUsage();
  let peakRss = base.rss;
  let peakHeapDelta = 0;
  const times = [];
  let plan;
  for (let r = 0; r < RUNS; r++) {
    globalThis.gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    plan = planFleets({ ...input, groupChanges: groupChanges() });
    times.push(performance.now() - t0);
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeapDelta = Math.max(peakHeapDelta, m.heapUsed - heapBefore);
  }
  const r0 = performance.now();
  const text = renderPlan(plan, { format: 'text', color: false });
  const renderMs = performance.now() - r0;
  const instances = fleets * INSTANCES_PER_FLEET;
  process.stdout.write(
    JSON.stringify({
      fleets,
      instances,
      planMs: median(times),
      renderMs,
      textKb: text.length / 1024,
      rssMb: mb(peakRss),
      heapDeltaMb: mb(peakHeapDelta),
      bytesPerInstance: peakHeapDelta / instances,
      summary: plan.summary,
    }),
  );
}

function parent() {
  const self = fileURLToPath(import.meta.url);
  const rows = [];
  for (const fleets of SIZES) {
    const res = spawnSync(process.execPath, ['--expose-gc', self, '--child', String(fleets)], {
      encoding: 'utf8',
    });
    if (res.status !== 0) {
      console.error(res.stderr);
      process.exit(1);
    }
    rows.push(JSON.parse(res.stdout));
  }
  const pad = (s, n) => String(s).padStart(n);
  console.log(
    `planFleets: median of ${RUNS} runs; ${INSTANCES_PER_FLEET} instances per fleet; Node ${process.version}`,
  );
  console.log(
    `${pad('fleets', 7)} ${pad('instances', 10)} ${pad('plan ms', 9)} ${pad('render ms', 10)} ${pad('peak rss MB', 12)} ${pad('heap Δ MB', 10)} ${pad('B/instance', 11)}`,
  );
  for (const r of rows) {
    console.log(
      `${pad(r.fleets, 7)} ${pad(r.instances, 10)} ${pad(r.planMs.toFixed(1), 9)} ${pad(r.renderMs.toFixed(1), 10)} ` +
        `${pad(r.rssMb.toFixed(1), 12)} ${pad(r.heapDeltaMb.toFixed(1), 10)} ${pad(r.bytesPerInstance.toFixed(0), 11)}`,
    );
  }
  const big = rows[rows.length - 1];
  const small = rows[0];
  const perInstanceUs = ((big.planMs - small.planMs) / (big.instances - small.instances)) * 1000;
  console.log(`growth: ${perInstanceUs.toFixed(2)} µs of plan time per added instance`);
  const ok = big.planMs < TARGET.ms && big.rssMb < TARGET.mb;
  console.log(
    `target at ${big.fleets} × ${INSTANCES_PER_FLEET}: < ${TARGET.ms} ms and < ${TARGET.mb} MB: ${ok ? 'met' : 'MISSED'} ` +
      `(summary ${JSON.stringify(big.summary)})`,
  );
  if (!ok) process.exitCode = 1;
}

const i = process.argv.indexOf('--child');
if (i >= 0) await child(Number(process.argv[i + 1]));
else parent();
