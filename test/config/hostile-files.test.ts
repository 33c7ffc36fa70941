/**
 * Files that attack the parser (alias bombs, deep nesting, binary junk, wrong encodings, huge
 * files) each give exactly one short error for their own file, and never stop the other files.
 */
import t from 'tap';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { formatIssue, loadFleets, loadFleetsFromText } from '../../src/config/index.js';
import { ALIAS_BOMB, HOSTILE_ERRORS, VALID_FLEET, hostileFiles } from '../helpers/hostile-files.js';

t.test('each hostile file gives its one exact error', async (t) => {
  const dir = t.testdir(hostileFiles());
  for (const [name, expected] of Object.entries(HOSTILE_ERRORS)) {
    const path = join(dir, name);
    const result = await loadFleets(path);
    t.strictSame(result.errors.map(formatIssue), [expected.replaceAll('@', path)], name);
    t.strictSame([result.fleets, result.warnings], [[], []], `${name}: no fleet, no warning`);
  }
});

t.test('with hostile files present, the other files load normally', async (t) => {
  const dir = t.testdir({ ...hostileFiles(), 'ok.yaml': VALID_FLEET });
  const result = await loadFleets(dir);
  t.strictSame(
    result.fleets.map((f) => f.spec.name),
    ['fine'],
  );
  t.strictSame(
    result.files
      .filter((f) => f.errors.length > 0)
      .map((f) => [f.file.slice(dir.length + 1), f.errors.length]),
    Object.keys(HOSTILE_ERRORS)
      .sort()
      .map((name) => [name, 1]),
    'one error per hostile file, none for ok.yaml',
  );
  const text = result.errors.map(formatIssue).join('\n');
  t.ok(text.length < 4000, `short output (${text.length} characters)`);
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  t.notMatch(text, /[\x00-\x08\x0e-\x1f\ufffd]/, 'no junk echoed');
});

t.test('texts given directly get the same checks (the daemon tests load this way)', async (t) => {
  t.strictSame(loadFleetsFromText('f.yaml', ALIAS_BOMB).errors.map(formatIssue), [
    HOSTILE_ERRORS['alias-bomb.yaml']!.replaceAll('@', 'f.yaml'),
  ]);
  t.strictSame(loadFleetsFromText('f.yaml', 'name: a\0b\n').errors.map(formatIssue), [
    HOSTILE_ERRORS['nul-bytes.yaml']!.replaceAll('@', 'f.yaml'),
  ]);
});

t.test('a device or other non-regular file is refused without being read', async (t) => {
  const dir = t.testdir({ 'ok.yaml': VALID_FLEET });
  symlinkSync('/dev/zero', join(dir, 'zero.yaml')); // reading it would never end
  const result = await loadFleets(dir);
  t.strictSame(result.errors.map(formatIssue), [
    `${join(dir, 'zero.yaml')}:1:1: not a regular file\n` +
      '  hint: fleet files are UTF-8 YAML text; move other files out of the fleets directory',
  ]);
  t.equal(result.fleets.length, 1);
});

t.test('a few aliases, moderate nesting and a 1 MiB file are fine', async (t) => {
  const anchors = `${VALID_FLEET}policy:\n  - &day {idle_count: 1, periods: ['* 8-18 * * *']}\n  - *day\n`;
  t.strictSame(loadFleetsFromText('f.yaml', anchors).errors, []);
  const deep = `${VALID_FLEET}labels: ${'['.repeat(60)}${']'.repeat(60)}\n`;
  t.notMatch(loadFleetsFromText('f.yaml', deep).errors.map(formatIssue).join(), /nests more than/);
  const big = `${'#'.repeat(1024 * 1024 - VALID_FLEET.length - 1)}\n${VALID_FLEET}`;
  t.equal(Buffer.byteLength(big), 1024 * 1024);
  t.strictSame(loadFleetsFromText('f.yaml', big).errors, [], 'exactly 1 MiB is allowed');
});

t.test('YAML messages never quote a token, and stay short and few', async (t) => {
  const leak = loadFleetsFromText('f.yaml', 'first\n# c\nglrt-abcdefghijklmnop here\n');
  t.strictSame(leak.errors.map(formatIssue), [
    'f.yaml:3:1: YAML syntax error: Unexpected scalar token in YAML stream: "(redacted token) here"',
  ]);
  // A log file that ended up in the fleets directory: thousands of errors, each quoting a line.
  const entry = (i: number) => `first ${i}\n# c\n${'x'.repeat(300)} ${i}\n`;
  const log = Array.from({ length: 500 }, (_, i) => entry(i)).join('---\n'); // one error per 4 lines
  const r = loadFleetsFromText('app.yaml', log);
  t.equal(r.errors.length, 11, '10 errors, then a count of the rest');
  t.strictSame(
    formatIssue(r.errors[10]!),
    [
      'app.yaml:43:1: 490 more YAML syntax errors (the first of them here)',
      '  hint: fix the first ones: the rest often follow from them',
    ].join('\n'),
  );
  t.ok(
    r.errors.every((e) => e.message.length <= 140 && !e.message.includes('\n')),
    'every message is one short line',
  );
  t.strictSame(r.fleets, []);
});
