import t from 'tap';
import {
  formatIssue,
  isKnownTimeZone,
  loadFleetsFromText,
  parseHostPort,
  periodCron,
  validateFleetTexts,
} from '../../src/config/index.js';

const base = 'provider: {type: local}\nmax_instances: 2\n';
/** Formatted errors and warnings of one fleet text, file name `f.yaml`. */
const check = (text: string) => {
  const r = loadFleetsFromText('f.yaml', text);
  return { errors: r.errors.map(formatIssue), warnings: r.warnings.map(formatIssue), fleets: r.fleets };
};

t.test('static hosts: host, host:port, [v6]:port', async (t) => {
  const ok: [string, { host: string; port?: number }][] = [
    ['10.0.0.5', { host: '10.0.0.5' }],
    ['build-2.example.com:2222', { host: 'build-2.example.com', port: 2222 }],
    ['localhost:22', { host: 'localhost', port: 22 }],
    ['[fd00::7]:22', { host: 'fd00::7', port: 22 }],
    ['[::1]', { host: '::1' }],
  ];
  for (const [entry, parsed] of ok) t.strictSame(parseHostPort(entry), parsed, entry);
  for (const bad of [
    '',
    'a:b:c',
    'host:',
    'host:0',
    'host:65536',
    'host:ssh',
    'fd00::7',
    '[zz::1]:22',
    'bad host',
    '-lead',
  ]) {
    t.equal(parseHostPort(bad), undefined, JSON.stringify(bad));
  }
});

t.test('periods and time zones use the same croner options as validation', async (t) => {
  const office = periodCron('* 8-17 * * mon-fri', 'Europe/Berlin');
  t.equal(office.match(new Date('2026-01-05T08:30:00Z')), true, 'Monday 09:30 Berlin');
  t.equal(office.match(new Date('2026-01-05T17:30:00Z')), false, 'Monday 18:30 Berlin');
  t.equal(office.match(new Date('2026-01-04T10:00:00Z')), false, 'Sunday');
  t.equal(isKnownTimeZone('America/New_York'), true);
  t.equal(isKnownTimeZone('+01:00'), false);
  t.equal(isKnownTimeZone('Nowhere/City'), false);
  t.strictSame(
    check(`name: n\n${base}policy:\n  - periods: ['@hourly']\n`).errors,
    [],
    'nicknames are accepted',
  );
  t.strictSame(check(`name: n\n${base}policy:\n  - periods: ['0 0 31 2 *']\n`).errors, [
    'f.yaml:5:15: policy[0].periods[0] "0 0 31 2 *" is not a valid cron period: never matches any date (at /policy/0/periods/0)\n' +
      '  hint: write 5 fields: minute hour day-of-month month day-of-week, e.g. "* 8-18 * * mon-fri"',
  ]);
  const tzOnly = check(`name: n\n${base}policy:\n  - periods: ['* 9 * * *']\n    timezone: Nowhere/City\n`);
  t.equal(tzOnly.errors.length, 1, 'a bad zone does not also fail its periods');
});

t.test('a token as a number is refused too, and env names are checked without echoing', async (t) => {
  t.match(check(`name: n\n${base}gitlab: {token: 1234567890}\n`).errors, [
    /gitlab\.token is a literal value written inline/,
  ]);
  const envAsToken = check(`name: n\n${base}gitlab: {token: {env: glrt-AbCdEf123456}}\n`);
  t.strictSame(envAsToken.errors, [
    'f.yaml:4:23: gitlab.token.env must be an environment variable name such as RUNNER_TOKEN (at /gitlab/token/env)',
  ]);
  const asKey = check(`name: n\n${base}gitlab: {token: {env: T}, glrt-AbCdEf123456: 1}\n`);
  t.strictSame(asKey.errors, [
    'f.yaml:4:1: gitlab has an unknown field that looks like a GitLab token (not shown) (at /gitlab)\n' +
      '  hint: secrets must not be stored in fleet files; use token: {env: NAME} or token: {file: PATH}',
  ]);
  t.strictSame(check(`name: n\n${base}gitlab: {token: {}}\n`).errors, [
    'f.yaml:4:10: gitlab.token must be {env: NAME} or {file: PATH} (at /gitlab/token)',
  ]);
});

t.test('schema messages: missing provider type, unknown field without a near name', async (t) => {
  t.strictSame(check('name: n\nprovider: {}\nmax_instances: 1\n').errors, [
    'f.yaml:2:1: provider.type is required (at /provider)\n  hint: set type to one of: local, static, aws',
  ]);
  t.strictSame(check(`name: n\n${base}connector: {zzz: 1}\n`).errors, [
    'f.yaml:4:13: unknown field "zzz" in connector (at /connector/zzz)\n' +
      '  hint: allowed here: username, protocol, port, key_path, use_static_credentials, use_external_addr, keepalive, timeout, max_sessions',
  ]);
});

t.test('aws: launch template by id or name, not both', async (t) => {
  const aws = (lt: string) =>
    `name: n\nprovider:\n  type: aws\n  region: eu-west-1\n  create:\n    launch_template: ${lt}\n    subnets: [subnet-0a]\nmax_instances: 2\n`;
  t.strictSame(check(aws('{id: lt-0abc, name: ci}')).errors, [
    'f.yaml:6:5: launch_template sets both id and name; choose one (at /provider/create/launch_template)',
  ]);
  t.strictSame(check(aws('{version: $Latest}')).errors, [
    'f.yaml:6:5: launch_template needs id or name (at /provider/create/launch_template)',
  ]);
  t.strictSame(check(aws('{id: lt-0abc, version: 0}')).errors, [
    'f.yaml:6:45: provider.create.launch_template.version must be $Default, $Latest or a version number (at /provider/create/launch_template/version)',
  ]);
  t.equal(check(aws('{name: ci, version: 4}')).fleets.length, 1);
});

t.test('one fleet per Auto Scaling group: adopted names, created names, regions', async (t) => {
  const adopt = (name: string, group: string, region = 'eu-west-1') =>
    `name: ${name}\nprovider: {type: aws, region: ${region}, auto_scaling_group: ${group}}\nmax_instances: 2\n`;
  const create = (name: string) =>
    `name: ${name}\nprovider: {type: aws, region: eu-west-1, create: {launch_template: {name: ci}, subnets: [subnet-0a]}}\nmax_instances: 2\n`;
  t.equal(
    check([adopt('a', 'g'), adopt('b', 'g', 'us-east-1')].join('---\n')).errors.length,
    0,
    'other region',
  );
  const hint =
    '  hint: give each fleet its own group: fleets sharing one fight over its capacity (until then none is applied)';
  t.strictSame(check([create('web'), adopt('b', 'runfleet-web')].join('---\n')).errors, [
    `f.yaml:2:42: Auto Scaling group "runfleet-web" in eu-west-1 is also used by fleet "b" at f.yaml:6:62 (at /provider/create)\n${hint}`,
    `f.yaml:6:62: Auto Scaling group "runfleet-web" in eu-west-1 is also used by fleet "web" at f.yaml:2:42 (at /provider/auto_scaling_group)\n${hint}`,
  ]);
  const three = check([adopt('a', 'g'), adopt('b', 'g'), adopt('c', 'g')].join('---\n'));
  t.equal(three.fleets.length, 0, 'three on one group: none is applied');
  t.match(
    three.errors[0],
    /group "g" in eu-west-1 is also used by fleet "b" at f\.yaml:6:\d+, fleet "c" at f\.yaml:10:\d+/,
  );
});

t.test('a name defined twice makes both definitions errors, whatever the file order', async (t) => {
  const one = 'name: same\nprovider: {type: local}\nmax_instances: 2\n';
  const hint =
    '  hint: fleet names must be unique across all fleet files; rename or remove all but one (until then none is applied)';
  for (const files of [
    ['aa-copy.yaml', 'healthy.yaml'],
    ['healthy.yaml', 'zz-copy.yaml'],
  ]) {
    const r = validateFleetTexts(files.map((file) => ({ file, text: one })));
    t.strictSame(r.fleets, [], `${files.join(' + ')}: no definition is taken`);
    t.strictSame(r.errors.map(formatIssue), [
      `${files[0]}:1:7: fleet name "same" is also defined at ${files[1]}:1:7 (at /name)\n${hint}`,
      `${files[1]}:1:7: fleet name "same" is also defined at ${files[0]}:1:7 (at /name)\n${hint}`,
    ]);
    t.strictSame(
      r.files.map((f) => f.errors.length),
      [1, 1],
      'each file is invalid, so a daemon holds the running fleet',
    );
  }
});

t.test(
  'durations must be at least 1s; idle_count is skipped when max_instances is itself invalid',
  async (t) => {
    t.strictSame(check(`name: n\n${base}policy: [{idle_time: 500ms}]\n`).errors, [
      'f.yaml:4:22: policy[0].idle_time must be at least 1s (at /policy/0/idle_time)',
    ]);
    t.strictSame(
      check('name: n\nprovider: {type: local}\nmax_instances: x\npolicy: [{idle_count: 3}]\n').errors,
      ['f.yaml:3:16: max_instances must be an integer (at /max_instances)'],
    );
  },
);

t.test('gitlab.check_interval: a duration of at least 100ms', async (t) => {
  const gitlab = (v: string) => `name: n\n${base}gitlab: {token: {env: T}, check_interval: ${v}}\n`;
  t.strictSame(check(gitlab('50ms')).errors, [
    'f.yaml:4:43: gitlab.check_interval must be at least 100ms (at /gitlab/check_interval)',
  ]);
  t.match(check(gitlab('3m0')).errors, [/^f\.yaml:4:43: gitlab\.check_interval "3m0" is not a duration/]);
  t.strictSame(check(gitlab('100ms')).errors, []);
  t.equal(check(gitlab('3s')).fleets[0]?.spec.gitlab?.check_interval, '3s');
});

t.test('warnings: settings that validate but do nothing or starve the fleet', async (t) => {
  const r = check(
    'name: few\nprovider: {type: static, hosts: [10.0.0.5, 10.0.0.6]}\nmax_instances: 5\n' +
      "policy:\n  - scale_factor_limit: 4\n  - periods: ['* 9-17 * * *']\n    preemptive_mode: true\n",
  );
  t.strictSame(r.errors, []);
  t.equal(r.fleets.length, 1, 'warnings do not drop the fleet');
  t.strictSame(r.warnings, [
    'f.yaml:3:16: max_instances 5 is more than the 2 static hosts; at most 2 instances will run (at /max_instances)',
    'f.yaml:5:25: policy[0].scale_factor_limit has no effect while scale_factor is 0 (at /policy/0/scale_factor_limit)',
    'f.yaml:7:22: policy[1].preemptive_mode is on but no idle capacity is kept, so no job will ever be requested (at /policy/1/preemptive_mode)\n' +
      '  hint: set idle_count above 0, or remove preemptive_mode',
  ]);
});

t.test('positions follow YAML aliases back to the anchored node', async (t) => {
  const r = check(`name: n\n${base}policy:\n  - &p {idle_time: forever}\n  - *p\n`);
  t.strictSame(r.errors, [
    'f.yaml:5:20: policy[0].idle_time "forever" is not a duration (at /policy/0/idle_time)\n' +
      '  hint: write a number and a unit (h, m, s, ms), largest unit first, e.g. 45s, 20m or 1h30m',
    'f.yaml:5:20: policy[1].idle_time "forever" is not a duration (at /policy/1/idle_time)\n' +
      '  hint: write a number and a unit (h, m, s, ms), largest unit first, e.g. 45s, 20m or 1h30m',
  ]);
});

t.test("capacity_per_instance over OpenSSH's default MaxSessions is a warning", async (t) => {
  const fleet = (extra: string) =>
    `name: n\nprovider: { type: static, hosts: [a] }\nexecutor: instance\nmax_instances: 1\n${extra}`;
  const over = check(fleet('capacity_per_instance: 20\n'));
  t.same(over.errors, []);
  t.match(over.warnings, [
    /capacity_per_instance 20 is more than the 10 SSH sessions OpenSSH's default MaxSessions allows/,
  ]);
  t.match(over.warnings[0], /hint: set MaxSessions 20 \(or more\) in the instances' sshd_config/);
  t.same(check(fleet('capacity_per_instance: 10\n')).warnings, [], '10 fits');
  t.same(
    check(fleet('capacity_per_instance: 20\nconnector: { max_sessions: 32 }\n')).warnings,
    [],
    'a server said to allow more',
  );
  t.same(
    check('name: n\nprovider: { type: local }\ncapacity_per_instance: 20\n').warnings,
    [],
    'local: no SSH',
  );
});
