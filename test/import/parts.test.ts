/** The importer's small parts: TOML positions and errors, plugin names, fleet names, Go durations. */
import t from 'tap';
import { convertGoDuration, goDurationNs } from '../../src/import/go-duration.js';
import { importedRunnerOf } from '../../src/import/fleet-file.js';
import { dnsLabel, fleetNameFor, tokenEnvFor, uniqueName } from '../../src/import/names.js';
import { isAwsPlugin, parsePlugin } from '../../src/import/plugin.js';
import { locateKeys, parseConfigToml, TomlSyntaxError } from '../../src/import/toml-source.js';

t.test(
  'a TOML syntax error is file:line:col and never quotes the line (it may hold the token)',
  async (t) => {
    const text = 'concurrent = 1\n[[runners]]\n  token = "glrt-SYNTAXerrorTOKEN" oops\n';
    const e = t.throws(() => parseConfigToml('conf/config.toml', text)) as unknown;
    t.ok(e instanceof TomlSyntaxError);
    const err = e as TomlSyntaxError;
    t.match(err.message, /^conf\/config\.toml:3:\d+: TOML syntax error: /);
    t.same(err.position.line, 3);
    t.notMatch(err.message, /glrt-|SYNTAXerror|oops/);
    t.notMatch(err.message, /\n/, 'one line');
  },
);

t.test(
  'positions of tables and keys, array tables counted per runner, multi-line strings skipped',
  async (t) => {
    const text = [
      '[[runners]]', // 1
      '  name = "a"', // 2
      '  script = """', // 3
      'name = "inside a string"', // 4
      '[not.a.table]', // 5
      '"""', // 6
      '  [runners.autoscaler]', // 7
      '    [[runners.autoscaler.policy]]', // 8
      '      idle_count = 1', // 9
      '[[runners]]', // 10
      '  [[runners.autoscaler.policy]]', // 11
      '    idle_time = "1m"', // 12
      '    "quoted.key" = 1', // 13
    ].join('\n');
    const at = locateKeys(text);
    t.same(at.get('runners[0].name'), { line: 2, col: 3 });
    t.equal(at.get('not.a.table'), undefined, 'a header inside a multi-line string is not a table');
    t.same(at.get('runners[0].autoscaler'), { line: 7, col: 3 });
    t.same(at.get('runners[0].autoscaler.policy[0].idle_count'), { line: 9, col: 7 });
    t.same(at.get('runners[1]'), { line: 10, col: 1 });
    t.same(at.get('runners[1].autoscaler.policy[0].idle_time'), { line: 12, col: 5 });
    t.same(at.get('runners[1].autoscaler.policy[0].quoted.key'), { line: 13, col: 5 });
    const source = parseConfigToml('c.toml', text);
    t.same(
      source.locate('runners[0].autoscaler.max_instances'),
      { line: 7, col: 3 },
      'a missing key: its table',
    );
  },
);

t.test('plugin names: every spelling GitLab accepts for the AWS plugin', async (t) => {
  for (const p of [
    'aws',
    'aws:latest',
    'aws:1',
    'fleeting-plugin-aws',
    '/usr/local/bin/fleeting-plugin-aws',
    'gitlab-org/fleeting/plugins/aws:1.0',
    'registry.gitlab.com/gitlab-org/fleeting/plugins/aws:0.4.2',
  ])
    t.ok(isAwsPlugin(parsePlugin(p)), p);
  for (const p of [
    'googlecloud',
    'fleeting-plugin-googlecompute',
    'azure:latest',
    'gitlab-org/fleeting/plugins/azure',
  ])
    t.notOk(isAwsPlugin(parsePlugin(p)), p);
  t.same(parsePlugin('registry.gitlab.com/gitlab-org/fleeting/plugins/aws:1.0'), {
    name: 'aws',
    repository: 'gitlab-org/fleeting/plugins',
    version: '1.0',
  });
  t.same(parsePlugin('fleeting-plugin-aws'), { name: 'aws' });
});

t.test('fleet names: DNS labels, unique, and their token variables', async (t) => {
  t.equal(dnsLabel('Docker Autoscaler (AWS) #1'), 'docker-autoscaler-aws-1');
  t.equal(dnsLabel('Ünïcode_runner'), 'unicode-runner');
  t.equal(dnsLabel('x'.repeat(70)).length, 63);
  t.equal(fleetNameFor('!!!', 'runner-3'), 'runner-3');
  t.equal(fleetNameFor(undefined, 'runner-1'), 'runner-1');
  const taken = new Set(['pool']);
  t.equal(uniqueName('pool', taken), 'pool-2');
  t.equal(uniqueName('pool', taken), 'pool-3');
  const long = 'a'.repeat(63);
  t.equal(uniqueName(long, new Set([long])), `${'a'.repeat(61)}-2`, 'the suffix fits in 63');
  t.equal(tokenEnvFor('aws-pool-2'), 'RUNFLEET_TOKEN_AWS_POOL_2');
});

t.test("Go durations become runfleet's", async (t) => {
  t.equal(convertGoDuration('20m0s')?.text, '20m');
  t.equal(convertGoDuration('1h0m0s')?.text, '1h');
  t.equal(convertGoDuration('1.5h')?.text, '1h30m');
  t.equal(convertGoDuration('300ms')?.text, '300ms');
  t.equal(convertGoDuration(30_000_000_000)?.text, '30s', 'a TOML integer is nanoseconds');
  t.match(convertGoDuration('10us'), { text: '0s', lossy: /rounded/ });
  t.equal(goDurationNs('twenty minutes'), undefined);
  t.equal(goDurationNs(''), undefined);
  t.equal(goDurationNs(true), undefined);
});

t.test('the import marker names the runner a file was imported for', async (t) => {
  t.equal(importedRunnerOf('# x\n# runfleet-import-runner: "AWS Pool"\nname: a\n'), 'AWS Pool');
  t.equal(importedRunnerOf('name: a\n'), undefined);
  t.equal(importedRunnerOf('# runfleet-import-runner: not json\n'), undefined);
});
