/**
 * The bad-input corpus: every file (or directory) under test/fixtures/config/bad must produce exactly
 * these formatted errors, positions included, and no fleet from the broken documents.
 */
import t from 'tap';
import { readdirSync } from 'node:fs';
import { formatIssue, loadFleets } from '../../src/config/index.js';

const BAD = 'test/fixtures/config/bad';

const DURATION_HINT =
  '  hint: write a number and a unit (h, m, s, ms), largest unit first, e.g. 45s, 20m or 1h30m';
const CRON_HINT =
  '  hint: write 5 fields: minute hour day-of-month month day-of-week, e.g. "* 8-18 * * mon-fri"';
const TOKEN_HINT =
  '  hint: use token: {env: NAME} or token: {file: PATH}, and rotate the token if this file was ever committed';
const AWS_HINT = '  hint: auto_scaling_group adopts an existing group; create makes runfleet own a new one';
const ASG_HINT =
  '  hint: give each fleet its own group: fleets sharing one fight over its capacity (until then none is applied)';
const NAME_HINT =
  '  hint: fleet names must be unique across all fleet files; rename or remove all but one (until then none is applied)';
const DNS_LABEL =
  "must be a DNS label: lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit";

/** Expected output per case; `@` stands for the case's own file path. */
const CASES: Record<string, { errors: string[]; fleets?: number }> = {
  'syntax-error.yaml': {
    errors: [
      '@:5:1: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ],
  },
  'duplicate-key.yaml': { errors: ['@:4:1: YAML syntax error: Map keys must be unique'] },
  'not-a-mapping.yaml': { errors: ['@:1:1: fleet must be a mapping (key: value)'] },
  'unknown-field.yaml': {
    errors: [
      '@:6:5: unknown field "idle_tme" in policy[0] (at /policy/0/idle_tme)\n  hint: did you mean "idle_time"?',
    ],
  },
  'wrong-type.yaml': {
    errors: [
      '@:3:16: max_instances must be an integer (at /max_instances)',
      '@:4:31: delete_instances_on_shutdown must be true or false (at /delete_instances_on_shutdown)',
    ],
  },
  'missing-max-instances.yaml': { errors: ['@:1:1: max_instances is required'] },
  'bad-name.yaml': { errors: [`@:1:7: name ${DNS_LABEL} (at /name)`] },
  'unknown-provider-type.yaml': {
    errors: ['@:3:9: provider.type must be one of: local, static, aws (at /provider/type)'],
  },
  'bad-cron.yaml': {
    errors: [
      `@:5:37: policy[0].periods[1] "61 * * * *" is not a valid cron period: Invalid value for minute: 61 (at /policy/0/periods/1)\n${CRON_HINT}`,
    ],
  },
  'bad-cron-fields.yaml': {
    errors: [
      `@:6:9: policy[0].periods[0] "0 * 8-18 * * mon-fri" is not a valid cron period: it has 6 fields, not 5 (at /policy/0/periods/0)\n${CRON_HINT}`,
    ],
  },
  'bad-timezone.yaml': {
    errors: [
      '@:5:15: policy[0].timezone "Mars/Olympus_Mons" is not a known IANA time zone (at /policy/0/timezone)\n' +
        '  hint: use a zone name such as UTC, Europe/Berlin or America/New_York',
    ],
  },
  'bad-duration.yaml': {
    errors: [
      `@:5:12: connector.timeout "10 minutes" is not a duration (at /connector/timeout)\n${DURATION_HINT}`,
      `@:7:16: policy[0].idle_time "30m20h" is not a duration (at /policy/0/idle_time)\n${DURATION_HINT}`,
    ],
  },
  'idle-count-too-high.yaml': {
    errors: [
      '@:6:17: policy[0].idle_count 7 is more than max_instances × capacity_per_instance = 3 × 2 = 6 slots (at /policy/0/idle_count)\n' +
        '  hint: idle_count counts job slots, not instances; lower it or raise max_instances',
    ],
  },
  'literal-token.yaml': {
    errors: [
      `@:6:10: gitlab.token is a literal value written inline; secrets must not be stored in fleet files (at /gitlab/token)\n${TOKEN_HINT}`,
    ],
  },
  'cache-inline-s3-keys.yaml': {
    errors: ['access_key', 'secret_key'].map(
      (k, i) =>
        `@:${8 + i}:17: cache.s3.${k} is written inline; secrets must not be stored in fleet files (at /cache/s3/${k})\n  hint: use ${k}: {env: NAME} or ${k}: {file: PATH}, and rotate the key if this file was ever committed`,
    ),
  },
  'cache-s3-incomplete.yaml': {
    errors: [
      '@:4:1: cache type s3 needs an s3 block (at /cache)\n  hint: add s3: {bucket_name: <bucket>, server_address: <host>}',
      '@:6:9: cache.path must be an object name prefix without spaces, e.g. ci-cache (at /cache/path)',
      '@:13:3: cache.s3.bucket_name is required (at /cache/s3)',
      '@:14:21: cache.s3.server_address must be host or host:port, without a scheme or path (set insecure: true for http) (at /cache/s3/server_address)',
      '@:15:26: authentication_type access-key needs both access_key and secret_key (at /cache/s3/authentication_type)\n  hint: add access_key: {env: NAME} and secret_key: {env: NAME}, or use authentication_type: iam',
    ],
  },
  'literal-glrt-token.yaml': {
    errors: [
      `@:5:10: gitlab.token is a GitLab token written inline; secrets must not be stored in fleet files (at /gitlab/token)\n${TOKEN_HINT}`,
    ],
  },
  'bad-token-ref.yaml': {
    errors: ['@:5:3: gitlab.token must be {env: NAME} or {file: PATH} (at /gitlab/token)'],
  },
  'docker-without-block.yaml': {
    errors: [
      '@:3:11: executor docker needs a docker block (at /executor)\n  hint: add docker: {image: <default job image>}',
    ],
  },
  'docker-block-with-instance-executor.yaml': {
    errors: [
      '@:4:1: a docker block is set but executor is instance (the default) (at /docker)\n' +
        '  hint: set executor: docker, or remove the docker block',
    ],
  },
  'bad-pull-policy.yaml': {
    errors: [
      '@:7:16: docker.pull_policy must be always, if-not-present or never, or a list of them (at /docker/pull_policy)',
    ],
  },
  'bad-pull-policy-item.yaml': {
    errors: [
      '@:7:33: docker.pull_policy[1] must be one of: always, if-not-present, never (at /docker/pull_policy/1)',
    ],
  },
  'aws-adopt-and-create.yaml': {
    errors: [
      `@:6:3: provider sets both auto_scaling_group and create; choose one (at /provider/create)\n${AWS_HINT}`,
    ],
  },
  'aws-neither-adopt-nor-create.yaml': {
    errors: [`@:2:1: provider aws needs auto_scaling_group or create (at /provider)\n${AWS_HINT}`],
  },
  'same-asg-twice.yaml': {
    errors: [
      `@:5:23: Auto Scaling group "shared-runners" in us-east-1 is also used by fleet "team-b" at @:12:23 (at /provider/auto_scaling_group)\n${ASG_HINT}`,
      `@:12:23: Auto Scaling group "shared-runners" in us-east-1 is also used by fleet "team-a" at @:5:23 (at /provider/auto_scaling_group)\n${ASG_HINT}`,
    ],
  },
  'static-bad-host.yaml': {
    errors: [
      '@:7:7: provider.hosts[2] "build-3:ssh" is not host or host:port (at /provider/hosts/2)\n' +
        '  hint: e.g. 10.0.0.5, build-1.example.com:2222 or [fd00::5]:22',
    ],
  },
  'duplicate-names': {
    fleets: 1,
    errors: [
      `@/a.yaml:2:7: fleet name "shared" is also defined at @/b.yaml:5:7 (at /name)\n${NAME_HINT}`,
      `@/b.yaml:5:7: fleet name "shared" is also defined at @/a.yaml:2:7 (at /name)\n${NAME_HINT}`,
    ],
  },
  'many-errors.yaml': {
    errors: [
      `@:2:7: name ${DNS_LABEL} (at /name)`,
      '@:5:3: provider.hosts must have at least 1 item (at /provider/hosts)',
      '@:6:16: max_instances must be >= 1 (at /max_instances)',
      '@:7:24: capacity_per_instance must be an integer (at /capacity_per_instance)',
      '@:8:8: apply must be one of: auto, manual (at /apply)',
      '@:10:19: policy[0].scale_factor must be >= 0 (at /policy/0/scale_factor)',
      '@:11:15: policy[0].timezone "Nowhere/City" is not a known IANA time zone (at /policy/0/timezone)\n' +
        '  hint: use a zone name such as UTC, Europe/Berlin or America/New_York',
    ],
  },
};

t.test('the corpus and the table list the same cases', async (t) => {
  t.strictSame(readdirSync(BAD).sort(), Object.keys(CASES).sort());
  t.ok(Object.keys(CASES).length >= 15, 'at least 15 bad inputs');
});

for (const [name, expected] of Object.entries(CASES)) {
  t.test(name, async (t) => {
    const path = `${BAD}/${name}`;
    const result = await loadFleets(path);
    t.strictSame(
      result.errors.map(formatIssue),
      expected.errors.map((e) => e.replaceAll('@', path)),
    );
    t.equal(result.fleets.length, expected.fleets ?? 0, 'only fleets without errors are returned');
    t.strictSame(result.warnings, [], 'no warnings');
  });
}

t.test('secrets written inline never appear in any output', async (t) => {
  const secrets: [file: string, secret: string][] = [
    ['literal-token.yaml', 'hunter2-very-secret-value'],
    ['literal-glrt-token.yaml', 'glrt-t1_AbCdEfGhIjKlMnOpQrSt'],
    ['cache-inline-s3-keys.yaml', 'AKIAIOSFODNN7EXAMPLE'],
    ['cache-inline-s3-keys.yaml', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'],
  ];
  for (const [file, secret] of secrets) {
    const result = await loadFleets(`${BAD}/${file}`);
    t.equal(result.errors.length, file.startsWith('cache-') ? 2 : 1, file);
    const everything = JSON.stringify(result) + result.errors.map(formatIssue).join('\n');
    t.notOk(everything.includes(secret), `${file}: the token text is absent`);
    t.notOk(everything.includes(secret.slice(0, 12)), `${file}: no prefix of it either`);
  }
});
