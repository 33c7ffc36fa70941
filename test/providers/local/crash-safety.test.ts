/**
 * No crash point of sandbox creation leaves a half-instance: a child process adding a sandbox is
 * SIGKILLed right after each step, then observe must show only complete instances, and the next
 * increase or decrease must clear whatever the crash left.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import type { Fleet } from '../../../src/model/fleet.js';
import type { GroupRef } from '../../../src/model/observed.js';
import { createLocalProvider, type CreateStep } from '../../../src/providers/local/index.js';

const ref: GroupRef = { fleet: 'ci', provider: 'local', name: 'ci' };
const fleet = { name: 'ci', provider: { type: 'local' } } as unknown as Fleet;
const CHILD = resolve(import.meta.dirname, 'crash-child.ts');

/** Runs crash-child.ts; resolves with how it ended. */
function crashAfter(stateDir: string, step: CreateStep) {
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((done) => {
    // execArgv carries tap's TypeScript loader, so the child runs the .ts sources as this test does.
    const child = spawn(process.execPath, [...process.execArgv, CHILD, stateDir, step], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => done({ code, signal, stderr }));
  });
}

const BEFORE_COMMIT: CreateStep[] = ['directory', 'work', 'instance-file'];

for (const step of [...BEFORE_COMMIT, 'renamed'] as const) {
  t.test(`killed after step ${step}: no half-instance, and the next change converges`, async (t) => {
    const stateDir = t.testdir();
    const groupDir = join(stateDir, 'local', 'ci');
    const provider = createLocalProvider({ stateDir });
    await provider.applyGroup(fleet);
    await provider.increase(ref, 1);
    const [kept] = (await provider.observe([ref]))[0]!.instances;

    const run = await crashAfter(stateDir, step);
    t.strictSame([run.signal, run.stderr], ['SIGKILL', ''], 'the child died at that step');

    const [group] = await provider.observe([ref]);
    const committed = step === 'renamed';
    t.strictSame(
      group!.instances.map((i) => i.state),
      committed ? ['running', 'running'] : ['running'],
      committed ? 'a renamed sandbox is complete' : 'the interrupted sandbox is no instance at all',
    );
    t.ok(
      group!.instances.some((i) => i.id === kept!.id),
      'the instance made before is untouched',
    );
    t.strictSame(
      group!.diagnostics.map((d) => d.code),
      committed ? [] : ['LOCAL_INCOMPLETE_SANDBOX'],
      'the leftover is reported',
    );

    await provider.increase(ref, 1);
    let after = (await provider.observe([ref]))[0]!;
    t.equal(after.instances.length, committed ? 3 : 2, 'exactly the asked-for instance was added');
    t.ok(
      after.instances.every((i) => i.state === 'running'),
      'all running',
    );
    t.strictSame(after.diagnostics, [], 'nothing left to report');
    t.strictSame(
      readdirSync(groupDir).sort(),
      after.instances.map((i) => i.id).sort(),
      'the leftover is gone from disk',
    );

    await provider.decrease(
      ref,
      after.instances.map((i) => i.id),
    );
    after = (await provider.observe([ref]))[0]!;
    t.strictSame(after.instances, []);
    await provider.deleteGroup(ref, fleet);
    t.equal((await provider.observe([ref]))[0]!.exists, false, 'the group can be deleted');
  });
}

t.test('a decrease also clears leftovers, and deleteGroup is not blocked by them', async (t) => {
  const stateDir = t.testdir();
  const provider = createLocalProvider({ stateDir });
  await provider.applyGroup(fleet);
  t.equal((await crashAfter(stateDir, 'work')).signal, 'SIGKILL');
  t.strictSame(await provider.decrease(ref, []), []);
  t.strictSame(readdirSync(join(stateDir, 'local', 'ci')), [], 'a decrease of nothing swept it');

  t.equal((await crashAfter(stateDir, 'directory')).signal, 'SIGKILL');
  await provider.deleteGroup(ref, fleet);
  t.equal((await provider.observe([ref]))[0]!.exists, false);
});

t.test('sandboxes an older version left without a complete instance.json are not instances', async (t) => {
  const stateDir = t.testdir();
  const groupDir = join(stateDir, 'local', 'ci');
  const provider = createLocalProvider({ stateDir });
  await provider.applyGroup(fleet);
  await provider.increase(ref, 1);
  // An older runfleet made `<id>/` first and wrote instance.json last: a crash in between left these.
  mkdirSync(join(groupDir, 'local-0000aaaa', 'work'), { recursive: true });
  mkdirSync(join(groupDir, 'local-0000cccc'));
  writeFileSync(join(groupDir, 'local-0000cccc', 'instance.json'), '{"id": "local-0000cc');

  const [group] = await provider.observe([ref]);
  t.equal(group!.instances.length, 1, 'neither counts as capacity');
  t.strictSame(
    group!.diagnostics.map((d) => [d.severity, d.code, d.message]),
    [
      [
        'warning',
        'LOCAL_INCOMPLETE_SANDBOX',
        'local group ci holds local-0000aaaa, a sandbox without a complete instance.json (an interrupted creation); it is not an instance',
      ],
      [
        'warning',
        'LOCAL_INCOMPLETE_SANDBOX',
        'local group ci holds local-0000cccc, a sandbox without a complete instance.json (an interrupted creation); it is not an instance',
      ],
    ],
  );
  t.equal(await provider.heartbeat(ref, 'local-0000aaaa'), false, 'it never answers a heartbeat');
  await t.rejects(provider.connectInfo(ref, 'local-0000aaaa'), { code: 'PROVIDER' });

  await provider.decrease(ref, []);
  const after = (await provider.observe([ref]))[0]!;
  t.strictSame(after.diagnostics, []);
  t.strictSame(
    readdirSync(groupDir),
    after.instances.map((i) => i.id),
  );
});

t.test('a creation in flight is neither an instance nor swept by a concurrent change', async (t) => {
  const stateDir = t.testdir();
  let resume!: () => void;
  let paused!: () => void;
  const reached = new Promise<void>((r) => (paused = r));
  const provider = createLocalProvider({
    stateDir,
    onCreateStep: (step) =>
      step === 'instance-file'
        ? new Promise<void>((r) => {
            resume = r;
            paused();
          })
        : undefined,
  });
  await provider.applyGroup(fleet);
  const creating = provider.increase(ref, 1);
  await reached;
  const [group] = await provider.observe([ref]);
  t.strictSame(group!.instances, [], 'not an instance until it is complete');
  t.strictSame(group!.diagnostics, [], 'and not a leftover either');
  await provider.decrease(ref, []);
  resume();
  t.equal(await creating, 1);
  const [after] = await provider.observe([ref]);
  t.strictSame(
    after!.instances.map((i) => i.state),
    ['running'],
    'the concurrent decrease left it alone',
  );
});
