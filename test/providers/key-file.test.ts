/** A key file is read once for a few seconds of jobs, again after that, and a failed read is not kept. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { KEY_FILE_TTL_MS, cachedKeyReader } from '../../src/providers/key-file.js';
import { manualTime } from '../../src/util/time.js';

t.test('reused within the TTL, re-read after it (a rotated key is picked up)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rf-key-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'id_ed25519');
  await writeFile(path, 'KEY ONE');
  const time = manualTime('2026-03-02T10:00:00Z');
  let reads = 0;
  const read = cachedKeyReader(async (p) => {
    reads++;
    const { readFile } = await import('node:fs/promises');
    return readFile(p, 'utf8');
  }, time);
  t.equal(await read(path), 'KEY ONE');
  await writeFile(path, 'KEY TWO');
  t.equal(await read(path), 'KEY ONE', 'the same read serves the next job');
  t.equal(reads, 1);
  time.advance(KEY_FILE_TTL_MS);
  t.equal(await read(path), 'KEY TWO', 'after the TTL the file is read again');
  t.equal(reads, 2);
});

t.test('a failed read is not cached', async (t) => {
  const time = manualTime('2026-03-02T10:00:00Z');
  let fail = true;
  const read = cachedKeyReader(async () => {
    if (fail) throw new Error('ENOENT');
    return 'KEY';
  }, time);
  await t.rejects(read('/nope'), /ENOENT/);
  fail = false;
  t.equal(await read('/nope'), 'KEY', 'the next call reads again');
});
