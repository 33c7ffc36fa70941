/**
 * Host-key pins on a real file: first contact pins, a matching key is trusted from memory (the
 * file is not read again), a differing key goes back to the file (so a pin removed by hand is
 * seen), writes keep hand edits of other entries, and many first contacts at once all land.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { fingerprint, KnownHostsFile } from '../../../src/runtime/connectors/known-hosts.js';

const key = (n: number) => Buffer.from(`host key ${n}`);

t.test('known hosts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-kh-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'state', 'known_hosts.json');
  const onDisk = () => JSON.parse(readFileSync(path, 'utf8')) as Record<string, { fingerprint: string }>;

  t.test('first contact pins; the same key is trusted, another refused', async (t) => {
    const kh = new KnownHostsFile(path);
    t.equal(await kh.check('a:22', key(1)), 'pinned');
    t.equal(await kh.check('a:22', key(1)), 'trusted');
    t.equal(await kh.check('a:22', key(2)), 'mismatch');
    t.equal(await kh.pinned('a:22'), fingerprint(key(1)));
    t.equal(onDisk()['a:22']?.fingerprint, fingerprint(key(1)), 'written to the file');
    t.equal(await new KnownHostsFile(path).check('a:22', key(2)), 'mismatch', 'a new process reads the pin');
  });

  t.test('a matching key is answered from memory, without reading the file', async (t) => {
    const kh = new KnownHostsFile(path);
    t.equal(await kh.check('a:22', key(1)), 'trusted');
    const saved = readFileSync(path, 'utf8');
    writeFileSync(path, 'not json');
    t.equal(await kh.check('a:22', key(1)), 'trusted');
    await t.rejects(kh.check('a:22', key(3)), 'a differing key reads the file (unreadable here)');
    writeFileSync(path, saved);
  });

  t.test('a pin removed by hand lets the new key in; hand edits of others are kept', async (t) => {
    const kh = new KnownHostsFile(path);
    t.equal(await kh.check('a:22', key(1)), 'trusted');
    const edited = onDisk();
    delete edited['a:22'];
    edited['hand:22'] = { fingerprint: 'SHA256:byhand' };
    writeFileSync(path, JSON.stringify(edited));
    t.equal(await kh.check('a:22', key(2)), 'pinned', 'the removal is seen');
    t.equal(await kh.check('b:22', key(3)), 'pinned');
    t.equal(await kh.pinned('b:22'), fingerprint(key(3)));
    const after = onDisk();
    t.equal(after['hand:22']?.fingerprint, 'SHA256:byhand', 'the hand-added entry survives our writes');
    t.equal(after['a:22']?.fingerprint, fingerprint(key(2)));
  });

  t.test('50 first contacts at once: every one pinned, all in the file', async (t) => {
    const kh = new KnownHostsFile(path);
    await kh.pinned('warm');
    const verdicts = await Promise.all(Array.from({ length: 50 }, (_, i) => kh.check(`h${i}:22`, key(i))));
    t.same(new Set(verdicts), new Set(['pinned']));
    await kh.pinned('h0:22');
    const file = onDisk();
    t.same(
      Array.from({ length: 50 }, (_, i) => file[`h${i}:22`]?.fingerprint),
      Array.from({ length: 50 }, (_, i) => fingerprint(key(i))),
    );
    t.equal(await kh.check('h7:22', key(8)), 'mismatch', 'pinned in memory at once');
  });

  t.test('forget removes the pin from memory and the file', async (t) => {
    const kh = new KnownHostsFile(path);
    t.equal(await kh.check('f:22', key(1)), 'pinned');
    await kh.forget('f:22');
    t.equal(onDisk()['f:22'], undefined);
    t.equal(await kh.check('f:22', key(2)), 'pinned', 'a new instance at the address is pinned afresh');
  });
});
