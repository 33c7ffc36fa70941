import t from 'tap';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { formatIssue, loadFleets } from '../../src/config/index.js';
import { isFleetError } from '../../src/errors.js';

const fleet = (name: string, extra = '') =>
  `name: ${name}\nprovider: {type: local}\nmax_instances: 2\n${extra}`;

t.test('the shipped fleets/ directory loads clean', async (t) => {
  const result = await loadFleets('fleets');
  t.strictSame(result.errors.map(formatIssue), []);
  t.strictSame(result.warnings.map(formatIssue), []);
  t.strictSame(
    result.fleets.map((f) => [f.spec.name, f.source]),
    [
      ['local-warm', { file: 'fleets/local.yaml', line: 7 }],
      ['local-ephemeral', { file: 'fleets/local.yaml', line: 19 }],
    ],
  );
  const examples = result.files.find((f) => f.file === 'fleets/aws-examples.yaml');
  t.strictSame(
    examples,
    { file: 'fleets/aws-examples.yaml', fleets: [], errors: [] },
    'all-comment file: zero fleets',
  );
  t.match(result.fleets[0]!.spec, {
    capacity_per_instance: 2,
    max_instances: 4,
    policy: [{ idle_count: 2 }],
  });
});

t.test('a missing directory is a CONFIG_INVALID error that points at --dir', async (t) => {
  const missing = join(t.testdirName, 'nope');
  await t.rejects(loadFleets(missing), {
    name: 'FleetError',
    code: 'CONFIG_INVALID',
    message: `fleet directory ${missing} does not exist`,
    hint: /--dir/,
  });
  try {
    await loadFleets(missing);
  } catch (e) {
    t.ok(isFleetError(e));
  }
});

t.test('an empty directory has no fleets and no errors', async (t) => {
  const dir = t.testdir({});
  t.strictSame(await loadFleets(dir), { fleets: [], errors: [], warnings: [], files: [] });
});

t.test(
  'finds *.yaml and *.yml in subdirectories, skips hidden and other files, in sorted order',
  async (t) => {
    const dir = t.testdir({
      'b.yml': fleet('b'),
      'a.yaml': fleet('a'),
      'notes.md': 'name: not-a-fleet',
      '.hidden.yaml': fleet('hidden'),
      '.git': { 'x.yaml': fleet('git') },
      team: { 'c.YAML': fleet('c'), deeper: { 'd.yaml': fleet('d') } },
      'empty.yaml': '',
      'comments.yaml': '# nothing here yet\n---\n# nor here\n',
    });
    const result = await loadFleets(dir);
    t.strictSame(result.errors, []);
    t.strictSame(
      result.fleets.map((f) => f.spec.name),
      ['a', 'b', 'c', 'd'],
    );
    t.strictSame(
      result.files.map((f) => f.file),
      ['a.yaml', 'b.yml', 'comments.yaml', 'empty.yaml', 'team/c.YAML', 'team/deeper/d.yaml'].map((f) =>
        join(dir, f),
      ),
      'paths are join(dir, relative path)',
    );
  },
);

t.test('several fleets per file, sources point at each document', async (t) => {
  const dir = t.testdir({
    'multi.yaml': `# header\n${fleet('one')}---\n${fleet('two')}\n---\n\n${fleet('three')}`,
  });
  const result = await loadFleets(dir);
  t.strictSame(
    result.fleets.map((f) => [f.spec.name, f.source.line]),
    [
      ['one', 2],
      ['two', 6],
      ['three', 12],
    ],
  );
});

t.test('results per file keep the good fleets apart from a broken file', async (t) => {
  const dir = t.testdir({
    'good.yaml': fleet('good'),
    'mixed.yaml': `${fleet('fine')}---\n${fleet('broken', 'max_use_count: -1\n')}`,
    'syntax.yaml': `${fleet('also-fine')}---\nname: [unclosed\n`,
  });
  const result = await loadFleets(dir);
  const byFile = Object.fromEntries(
    result.files.map((f) => [
      f.file.slice(dir.length + 1),
      { fleets: f.fleets.map((x) => x.spec.name), errors: f.errors.length },
    ]),
  );
  t.strictSame(byFile, {
    'good.yaml': { fleets: ['good'], errors: 0 },
    'mixed.yaml': { fleets: ['fine'], errors: 1 },
    'syntax.yaml': { fleets: ['also-fine'], errors: 1 },
  });
  t.strictSame(
    result.fleets.map((f) => f.spec.name),
    ['good', 'fine', 'also-fine'],
  );
  t.strictSame(
    result.errors.map((e) => [e.file.slice(dir.length + 1), e.line, e.col, e.pointer]),
    [
      ['mixed.yaml', 8, 16, '/max_use_count'],
      ['syntax.yaml', 6, 1, ''],
    ],
    'errors of all files at once, sorted',
  );
});

t.test('an unreadable fleet file is an error of that file, not a crash', async (t) => {
  const dir = t.testdir({ 'ok.yaml': fleet('ok') });
  symlinkSync(join(dir, 'missing-target'), join(dir, 'dangling.yaml'));
  const result = await loadFleets(dir);
  t.strictSame(result.errors.map(formatIssue), [
    `${join(dir, 'dangling.yaml')}:1:1: cannot read fleet file (ENOENT)`,
  ]);
  t.strictSame(
    result.fleets.map((f) => f.spec.name),
    ['ok'],
  );
  t.strictSame(
    result.files.map((f) => f.file),
    [join(dir, 'dangling.yaml'), join(dir, 'ok.yaml')],
  );
});

t.test('a single file can be loaded directly', async (t) => {
  const result = await loadFleets('fleets/local.yaml');
  t.equal(result.fleets.length, 2);
  t.equal(result.files[0]!.file, 'fleets/local.yaml');
});
