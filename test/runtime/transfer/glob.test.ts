/**
 * Patterns match as gitlab-runner's doublestar does: `*` stops at `/`, `**` spans segments (also
 * none), dot files are ordinary, `[!x]` is a negated class, and paths outside the project are refused.
 */
import t from 'tap';
import { compilePattern, isPatternProblem, staticBase } from '../../../src/runtime/transfer/glob.js';

const root = '/b/0/acme/demo';
const matcher = (p: string) => {
  const c = compilePattern(p, root);
  if (isPatternProblem(c)) throw new Error(c.reason);
  return c;
};

t.test('doublestar semantics', async (t) => {
  const cases: [string, string, boolean][] = [
    ['*.txt', 'a.txt', true],
    ['*.txt', 'd/a.txt', false],
    ['*.txt', '.hidden.txt', true],
    ['**/*.txt', 'a.txt', true],
    ['**/*.txt', 'x/y/a.txt', true],
    ['dist/**', 'dist', true],
    ['dist/**', 'dist/a/b', true],
    ['a/**/b', 'a/b', true],
    ['a/**/b', 'a/x/y/b', true],
    ['a?c', 'abc', true],
    ['a?c', 'a/c', false],
    ['[!a]x', 'bx', true],
    ['[!a]x', 'ax', false],
    ['[^a]x', 'bx', true],
    ['{a,b}/c', 'b/c', true],
    ['!a', '!a', true],
    ['a+(b)', 'a+(b)', true],
    ['a\\*', 'a*', true],
    ['a\\*', 'ab', false],
    ['./dist/', 'dist', true],
    [`${root}/out/*.log`, 'out/x.log', true],
  ];
  for (const [pattern, path, want] of cases)
    t.equal(matcher(pattern).match(path), want, `${pattern} ~ ${path}`);
});

t.test('normalised patterns and the directory each one lists', async (t) => {
  t.equal(matcher('./dist/').pattern, 'dist');
  t.equal(matcher('dist/**/*.js').base, 'dist');
  t.equal(matcher('*.txt').base, '.');
  t.equal(matcher('a/b/c.txt').base, 'a/b/c.txt');
  t.equal(staticBase('a/{b,c}/d'), 'a');
  t.equal(matcher('.').pattern, '.');
});

t.test('paths outside the project are refused with gitlab-runner words', async (t) => {
  for (const p of ['../x', 'a/../../x', '/etc/passwd']) {
    const c = compilePattern(p, root);
    t.ok(isPatternProblem(c), p);
    if (isPatternProblem(c)) t.match(c.reason, /not a subpath of project directory/);
  }
});
