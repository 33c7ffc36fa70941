// Start-up time of one-shot commands: `runfleet validate` and `runfleet plan` on the example
// fleets, beside `node -e 0` measured in the same run (the floor). Target: validate <= 2.5x floor.
// Run: npm run bench:startup   (compiled dist; loopback only: the example fleets are local ones)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const dir = mkdtempSync(join(tmpdir(), 'rf-startup-'));
mkdirSync(join(dir, 'fleets'));
writeFileSync(
  join(dir, 'fleets', 'local.yaml'),
  'name: local\nprovider: { type: local }\ncapacity_per_instance: 1\nmax_instances: 2\npolicy:\n  - idle_count: 0\n',
);
const bin = new URL('../bin/runfleet.js', import.meta.url).pathname;
const time = (args) => {
  const t0 = performance.now();
  try {
    execFileSync(process.execPath, args, { cwd: dir, stdio: 'ignore' });
  } catch {
    // plan exits 0; validate 0; a failure still measures the start-up
  }
  return performance.now() - t0;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const runs = Number(process.env.RUNS ?? 9);
const floor = [];
const validate = [];
const plan = [];
for (let i = 0; i < runs; i++) {
  floor.push(time(['-e', '0']));
  validate.push(time([bin, 'validate']));
  plan.push(time([bin, 'plan']));
}
const f = median(floor);
const v = median(validate);
const p = median(plan);
console.log(`start-up, median of ${runs}: node -e 0 ${f.toFixed(0)} ms (floor)`);
console.log(`  runfleet validate ${v.toFixed(0)} ms (${(v / f).toFixed(1)}x, target <= 2.5x)`);
console.log(`  runfleet plan     ${p.toFixed(0)} ms (${(p / f).toFixed(1)}x)`);
