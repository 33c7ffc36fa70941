/** Where a rotated runner token survives a restart: the token file itself, and the state directory. */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadRotatedToken, saveRotatedToken } from '../../src/runtime/rotated-tokens.js';

t.test(
  '{env}: kept in the state dir, used while the environment still holds the revoked token',
  async (t) => {
    const dir = t.testdir({});
    await saveRotatedToken(dir, 'web', { env: 'TOKEN' }, 'glrt-old', 'glrt-new1', '2027-01-01T00:00:00Z');
    t.equal(await loadRotatedToken(dir, 'web', 'glrt-old'), 'glrt-new1');
    await saveRotatedToken(dir, 'web', { env: 'TOKEN' }, 'glrt-old', 'glrt-new2', undefined);
    t.equal(await loadRotatedToken(dir, 'web', 'glrt-old'), 'glrt-new2', 'the newest rotation');
    t.equal(await loadRotatedToken(dir, 'web', 'glrt-operator-set'), undefined, 'a token set later wins');
    t.equal(await loadRotatedToken(dir, 'other', 'glrt-old'), undefined, 'per fleet');
    const file = join(dir, 'runner-tokens', 'web.json');
    t.equal(statSync(file).mode & 0o777, 0o600, 'readable by runfleet only');
    t.notMatch(readFileSync(file, 'utf8'), 'glrt-old', 'the old token is kept only as a hash');
  },
);

t.test('{file}: the token file is rewritten; an unwritable one is reported', async (t) => {
  const dir = t.testdir({ 'token.txt': 'glrt-old\n' });
  const ref = { file: join(dir, 'token.txt') };
  await saveRotatedToken(dir, 'web', ref, 'glrt-old', 'glrt-new', undefined);
  t.equal(readFileSync(ref.file, 'utf8'), 'glrt-new\n');
  t.equal(statSync(ref.file).mode & 0o777, 0o600);
  const missing = { file: join(dir, 'no-such-dir', 'x', '\0bad') };
  await t.rejects(saveRotatedToken(dir, 'web', missing, 'glrt-old', 'glrt-newer', undefined), {
    message: /kept in the state directory instead/,
  });
  t.equal(await loadRotatedToken(dir, 'web', 'glrt-old'), 'glrt-newer', 'still kept for the restart');
});
