import t from 'tap';
import { formatIssue } from '../../src/config/index.js';
import { fieldPath, pointerSegments, quoteValue, toPointer } from '../../src/config/issues.js';

t.test('formatIssue: path:line:col: message (at pointer), then the hint', async (t) => {
  const issue = {
    file: 'fleets/a.yaml',
    line: 3,
    col: 7,
    pointer: '/max_instances',
    message: 'max_instances must be >= 1',
  };
  t.equal(formatIssue(issue), 'fleets/a.yaml:3:7: max_instances must be >= 1 (at /max_instances)');
  t.equal(
    formatIssue({ ...issue, hint: 'raise it' }),
    'fleets/a.yaml:3:7: max_instances must be >= 1 (at /max_instances)\n  hint: raise it',
  );
  t.equal(
    formatIssue({ ...issue, pointer: '', message: 'YAML syntax error: x' }),
    'fleets/a.yaml:3:7: YAML syntax error: x',
  );
});

t.test('pointers and field paths', async (t) => {
  t.equal(fieldPath('/policy/0/idle_count'), 'policy[0].idle_count');
  t.equal(fieldPath(''), 'fleet');
  t.equal(toPointer(['a/b', 'c~d', 0]), '/a~1b/c~0d/0');
  t.strictSame(pointerSegments('/a~1b/c~0d/0'), ['a/b', 'c~d', '0']);
});

t.test('quoteValue never repeats something that looks like a GitLab token', async (t) => {
  t.equal(quoteValue('glrt-abcdefghijklmnop'), '(redacted token)');
  t.equal(quoteValue('  glpat-xyz'), '(redacted token)');
  t.equal(quoteValue('20 minutes'), '"20 minutes"');
  t.equal(quoteValue('x'.repeat(100)).length, 61);
});
