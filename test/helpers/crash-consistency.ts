/**
 * The crash-consistency harness: `apply` or `watch` (a child process) is SIGKILLed at every step
 * of a scale-up or scale-down of the local provider that a first, uncrashed run records (see
 * crash-child.mjs); after each crash the same command runs again, then `watch` starts, and the
 * state must hold: the ledger is exactly the sandboxes, no intent is open, every slot of every
 * instance is offered, and no more than `max_instances` sandboxes ever existed.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { apply } from '../../src/cli/commands/apply.js';
import { startManager } from '../../src/cli/root.js';
import { openSqliteStore } from '../../src/store/index.js';
import { silentLogger } from '../../src/util/logger.js';
import { recordedSteps, runCrashChild, sandboxIds } from './crash-run.js';

const MAX = 3;
const fleet = (idleCount: number) =>
  `name: ci\nprovider: { type: local }\nmax_instances: ${MAX}\n` +
  `policy:\n  - idle_count: ${idleCount}\n    idle_time: 1s\n`;

const quietIo = {
  out: () => undefined,
  err: () => undefined,
  color: false,
  interactive: false,
  prompt: async () => '',
};
const options = (dir: string) => ({
  dir: join(dir, 'fleets'),
  state: join(dir, '.runfleet', 'state.db'),
  color: false,
});

/** Starts `watch` in this process, waits until it is idle, and returns what it offers. */
async function watchUntilIdle(dir: string) {
  const manager = await startManager(options(dir), {
    listen: '127.0.0.1:0',
    graceMs: 500,
    intervalMs: 3_600_000,
    logger: silentLogger,
  });
  try {
    await manager.daemon.idle();
    return manager.daemon.slots.counts('ci');
  } finally {
    await manager.stop();
  }
}

async function stored(dir: string) {
  const store = await openSqliteStore(join(dir, '.runfleet', 'state.db'));
  try {
    return {
      ledger: (await store.listInstances('ci')).map((r) => r.id).sort(),
      intents: (await store.listOpenIntents()).map((i) => `${i.action} ${JSON.stringify(i.detail)}`),
    };
  } finally {
    await store.close();
  }
}

async function idleForAnHour(dir: string): Promise<void> {
  const store = await openSqliteStore(join(dir, '.runfleet', 'state.db'));
  try {
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    for (const row of await store.listInstances('ci')) {
      await store.putInstance({ ...row, created_at: hourAgo, ready_at: hourAgo });
    }
  } finally {
    await store.close();
  }
}

/** A fresh copy of `base`, removed at teardown. */
function copyOf(t: Test, base: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'rf-crash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(base, dir, { recursive: true });
  return dir;
}

/** A directory holding the fleet file, and for a scale-down 3 instances already in service. */
async function template(t: Test, scenario: 'scale-up' | 'scale-down'): Promise<string> {
  const dir = t.testdir();
  mkdirSync(join(dir, 'fleets'));
  writeFileSync(join(dir, 'fleets', 'ci.yaml'), fleet(MAX));
  if (scenario === 'scale-down') {
    await apply(options(dir), { autoApprove: true }, quietIo);
    await watchUntilIdle(dir); // probes them: ready, as they are before an idle scale-in
    await idleForAnHour(dir); // past idle_time whenever the crash runs: no timing in the test
    writeFileSync(join(dir, 'fleets', 'ci.yaml'), fleet(1));
  }
  return dir;
}

export async function crashEveryStep(
  t: Test,
  mode: 'apply' | 'watch',
  scenario: 'scale-up' | 'scale-down',
): Promise<void> {
  const base = await template(t, scenario);
  const dry = copyOf(t, base);
  const clean = await runCrashChild(mode, dry, -1);
  t.equal(clean.code, 0, `the uncrashed run finishes: ${clean.stderr}`);
  const steps = recordedSteps(dry);
  const want = scenario === 'scale-up' ? MAX : 1;
  t.equal(sandboxIds(dry, 'ci').length, want, `uncrashed, it converges to ${want}`);
  t.ok(steps.length > 0, `steps recorded: ${steps.join(' ')}`);

  for (let k = 0; k < steps.length; k++) {
    const dir = copyOf(t, base);
    const at = `${mode} killed at step ${k} (${steps[k]})`;
    const run = await runCrashChild(mode, dir, k);
    t.equal(run.signal, 'SIGKILL', `${at}: it died there ${run.stderr}`);
    t.ok(sandboxIds(dir, 'ci').length <= MAX, `${at}: never above max_instances`);

    if (mode === 'apply') await apply(options(dir), { autoApprove: true }, quietIo);
    const offered = await watchUntilIdle(dir);
    const sandboxes = sandboxIds(dir, 'ci');
    const after = await stored(dir);
    t.strictSame(after.ledger, sandboxes, `${at}: the ledger is exactly the sandboxes`);
    t.strictSame(after.intents, [], `${at}: no intent stays open`);
    t.equal(sandboxes.length, want, `${at}: converged to ${want}, never above max_instances`);
    t.match(
      offered,
      { idle: sandboxes.length, unavailable: 0, unhealthy: 0 },
      `${at}: every slot is offered`,
    );
  }
}
