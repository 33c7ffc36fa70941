/**
 * `runfleet apply` while `runfleet watch` runs: an `apply: manual` fleet's edit waits for review,
 * and a reviewed apply approves it on the daemon, which applies it under its own lock.
 */
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { openSqliteStore } from '../../src/store/index.js';
import { BIN, runCli, until } from './helpers.js';

const manual = (max: number) =>
  `name: reviewed\nprovider: { type: local }\napply: manual\nmax_instances: ${max}\npolicy:\n  - idle_count: 1\n`;

t.test('a manual fleet change is applied through the running daemon after review', async (t) => {
  const dir = t.testdir({ fleets: { 'reviewed.yaml': manual(2) } });
  t.equal((await runCli(dir, ['apply', '--auto-approve'])).code, 0, 'first applied by hand');

  const child = spawn(process.execPath, [BIN, 'watch', '--listen', '127.0.0.1:0', '--interval', '1s'], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  // Bounds, not durations: at load average ~20 the daemon had not written watch.json after 10 s.
  await until(
    'the daemon',
    async () => JSON.parse(await readFile(join(dir, '.runfleet', 'watch.json'), 'utf8')) as unknown,
    60_000,
  );

  const appliedMax = async () => {
    const store = await openSqliteStore(join(dir, '.runfleet', 'state.db'));
    try {
      return (await store.listFleets()).find((f) => f.name === 'reviewed')?.spec.max_instances;
    } finally {
      await store.close();
    }
  };
  await writeFile(join(dir, 'fleets', 'reviewed.yaml'), manual(5));
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(await appliedMax(), 2, "the daemon leaves a manual fleet's edit for review");

  const refused = await runCli(dir, ['apply']);
  t.equal(refused.code, 1, 'no TTY, no --auto-approve: nothing approved');
  t.match(refused.stdout, /max_instances\s+= 2 -> 5/);
  t.equal(await appliedMax(), 2);

  const approved = await runCli(dir, ['apply', '--auto-approve']);
  t.equal(approved.code, 0, approved.stderr);
  t.match(approved.stdout, /fleet\.reviewed: approved; the daemon applies it now/);
  await until(
    'the approved change applied',
    async () => ((await appliedMax()) === 5 ? true : undefined),
    60_000,
  );

  child.kill('SIGTERM');
  t.equal(await exited, 0);
});
