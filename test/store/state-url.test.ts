import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseStateTarget, redactUrl, resolvePassword } from '../../src/store/state-url.js';

t.test('a path is a SQLite file, a postgres URL a database', async (t) => {
  t.same(parseStateTarget('.runfleet/state.db'), { kind: 'sqlite', path: '.runfleet/state.db' });
  t.same(parseStateTarget('postgres://ci@db.example:6543/runfleet'), {
    kind: 'postgres',
    location: 'postgres://ci@db.example:6543/runfleet',
    host: 'db.example',
    port: 6543,
    database: 'runfleet',
    user: 'ci',
  });
  t.match(parseStateTarget('postgresql://[::1]/state?password_file=/run/pw'), {
    kind: 'postgres',
    host: '::1',
    port: 5432,
    database: 'state',
    passwordFile: '/run/pw',
    location: 'postgres://[::1]/state',
  });
});

t.test('a password in the URL is refused without being repeated', async (t) => {
  const err = (() => {
    try {
      parseStateTarget('postgres://ci:hunter2@db/runfleet');
    } catch (e) {
      return e as Error & { hint?: string; code?: string };
    }
    return undefined;
  })();
  t.equal(err?.code, 'USAGE');
  t.notMatch(err?.message ?? '', /hunter2/);
  t.match(err?.message ?? '', 'postgres://ci:***@db/runfleet');
  t.match(err?.hint ?? '', /PGPASSWORD/);
});

t.test('malformed URLs name what is missing', async (t) => {
  t.throws(() => parseStateTarget('postgres://ci@db'), { code: 'USAGE', message: /no database name/ });
  t.throws(() => parseStateTarget('postgres://ci@db/x?sslmode=off'), {
    code: 'USAGE',
    message: /unknown parameter sslmode/,
  });
  t.throws(() => parseStateTarget('postgres://ci@db:notaport/x'), {
    code: 'USAGE',
    message: /not a valid URL/,
  });
});

t.test('the password comes from password_file, else PGPASSWORD', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'pw');
  writeFileSync(file, 's3cret\nignored\n');
  const target = parseStateTarget(`postgres://ci@db/x?password_file=${file}`);
  if (target.kind !== 'postgres') throw new Error('expected postgres');
  t.equal(resolvePassword(target, { PGPASSWORD: 'from-env' }), 's3cret');
  const plain = parseStateTarget('postgres://ci@db/x');
  if (plain.kind !== 'postgres') throw new Error('expected postgres');
  t.equal(resolvePassword(plain, { PGPASSWORD: 'from-env' }), 'from-env');
  t.equal(resolvePassword(plain, {}), undefined);
  const missing = parseStateTarget(`postgres://ci@db/x?password_file=${join(dir, 'nope')}`);
  if (missing.kind !== 'postgres') throw new Error('expected postgres');
  t.throws(() => resolvePassword(missing, {}), { code: 'STATE', message: /password file .*nope/ });
});

t.test('redactUrl hides a password and nothing else', async (t) => {
  t.equal(redactUrl('postgres://a:b@h/d'), 'postgres://a:***@h/d');
  t.equal(redactUrl('postgres://a@h/d'), 'postgres://a@h/d');
});
