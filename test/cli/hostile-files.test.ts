/**
 * `runfleet validate` and `plan` on hostile fleet files: one short error per file, the usual exit
 * code 1, no internal error, no stack trace, no junk echoed.
 */
import t from 'tap';
import { HOSTILE_ERRORS, VALID_FLEET, hostileFiles } from '../helpers/hostile-files.js';
import { runCli } from './helpers.js';

t.test('validate and plan report each hostile file in one short error', async (t) => {
  const dir = t.testdir({ fleets: { ...hostileFiles(), 'ok.yaml': VALID_FLEET } });
  const expected = Object.entries(HOSTILE_ERRORS)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, error]) => error.replaceAll('@', `fleets/${name}`));
  const count = expected.length;

  const validate = await runCli(dir, ['validate']);
  t.equal(validate.code, 1);
  t.equal(validate.stdout, '');
  t.equal(validate.stderr, `${expected.join('\n')}\n\n${count} error(s) in fleets; nothing was changed.\n`);

  const plan = await runCli(dir, ['plan']);
  t.equal(plan.code, 1);
  t.ok(plan.stderr.startsWith(`${expected.join('\n')}\n`), 'plan prints the same errors');
  t.match(plan.stderr, /nothing was planned/);
  for (const out of [validate.stderr, plan.stderr]) {
    t.notMatch(out, /Internal error|\n\s+at /, 'no internal error, no stack trace');
    t.ok(out.length < 4000, `short (${out.length} characters)`);
  }
});
