/**
 * The fleets directory watcher on a real directory: one save is reloaded, a burst of saves is
 * reloaded once, and a save during a reload leads to exactly one more reload.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { watchFleetDir } from '../../src/daemon/config-watcher.js';
import { silentLogger } from '../../src/util/logger.js';
import { waitFor } from '../helpers/topology/processes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Long next to the daemon's 20 ms: on a loaded machine chokidar may hand over the events of
// writes made at once a few hundred ms apart, and this test is about bursts, not speed.
const SETTLE_MS = 1000;

t.test('a save reloads once; a burst of saves reloads once; a save during a reload once more', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-watch-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let reloads = 0;
  let hold: (() => void) | undefined;
  const watcher = await watchFleetDir(
    dir,
    async () => {
      reloads++;
      if (hold === undefined) return;
      await new Promise<void>((r) => (hold = r));
    },
    { logger: silentLogger, settleMs: SETTLE_MS },
  );
  t.teardown(() => watcher.close());

  writeFileSync(join(dir, 'a.yaml'), 'name: a\n');
  t.ok(await waitFor(() => reloads === 1, 10_000, 5), 'a save is reloaded');

  for (let i = 0; i < 5; i++) writeFileSync(join(dir, 'a.yaml'), `name: a${i}\n`);
  t.ok(await waitFor(() => reloads === 2, 10_000, 5));
  await sleep(SETTLE_MS + 500);
  t.equal(reloads, 2, 'five saves at once: one reload');

  hold = () => undefined;
  writeFileSync(join(dir, 'b.yaml'), 'name: b\n');
  t.ok(await waitFor(() => reloads === 3, 10_000, 5), 'the reload runs and is held');
  writeFileSync(join(dir, 'b.yaml'), 'name: b1\n');
  writeFileSync(join(dir, 'c.yaml'), 'name: c\n');
  await sleep(SETTLE_MS + 500);
  t.equal(reloads, 3, 'no reload starts while one runs');
  const release = hold;
  hold = undefined;
  release();
  t.ok(await waitFor(() => reloads === 4, 10_000, 5), 'the saves made during it: one more reload');
  await sleep(SETTLE_MS + 500);
  t.equal(reloads, 4);
});
