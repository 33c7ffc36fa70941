/**
 * The config.toml corpus (test/fixtures/import/, shaped like GitLab's documentation examples and
 * what cattle-ops/terraform-aws-gitlab-runner renders): for each file, the fleets produced, that the
 * real fleet loader accepts them all together, the report, and that no secret of the input appears
 * in any output.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { validateFleetTexts } from '../../src/config/index.js';
import { importConfig, type ImportResult } from '../../src/import/import.js';
import { renderReport, type RunnerReport } from '../../src/import/report.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'import');
const NOW = new Date('2026-03-04T05:06:07Z');

function run(fixture: string, region?: string): { result: ImportResult; text: string } {
  const file = `config/${fixture}`;
  const text = readFileSync(join(FIXTURES, fixture), 'utf8');
  const result = importConfig({
    file,
    sourcePath: `/etc/gitlab-runner/${fixture}`,
    text,
    outDir: 'fleets',
    schemaPath: '../schemas/fleet.schema.json',
    now: NOW,
    ...(region !== undefined && { region }),
  });
  return { result, text };
}

/** The fleet documents as data, header comments dropped. */
const fleets = (r: ImportResult) => r.files.map((f) => parse(f.text) as Record<string, unknown>);
const settings = (entries: { setting: string }[]) => entries.map((e) => e.setting);
const runner = (r: ImportResult, name: string, nth = 0): RunnerReport =>
  r.report.runners.filter((x) => x.runner === name)[nth]!;

/** Secrets of the input: token values, passwords, DSNs, tokens inside other settings. */
function secretsOf(text: string): string[] {
  const found = [
    ...text.matchAll(/"((?:glrt|glpat)-[A-Za-z0-9]+|[^"]*SECRET[^"]*|https:\/\/[0-9a-f]+@[^"]+)"/g),
  ];
  return found.map((m) => m[1]!);
}

function assertNoSecrets(t: Test, result: ImportResult, input: string): void {
  const secrets = secretsOf(input);
  t.ok(secrets.length > 0, `the fixture holds ${secrets.length} secret(s) to look for`);
  const outputs = [renderReport(result.report), ...result.files.map((f) => f.text)].join('\n');
  for (const s of secrets) t.notOk(outputs.includes(s), `${s.slice(0, 6)}... never appears in the output`);
}

function assertValid(t: Test, result: ImportResult): void {
  const loaded = validateFleetTexts(result.files.map((f) => ({ file: f.path, text: f.text })));
  t.same(loaded.errors, [], 'the fleet loader accepts every produced file');
  t.equal(loaded.fleets.length, result.files.length, 'one fleet per file');
}

t.test('GitLab docs: docker-autoscaler on AWS, 1 job per instance', async (t) => {
  const { result, text } = run('docker-autoscaler-aws.toml');
  t.equal(result.complete, true);
  t.same(fleets(result), [
    {
      name: 'docker-autoscaler-example',
      provider: { type: 'aws', region: 'eu-west-1', profile: 'default', auto_scaling_group: 'my-docker-asg' },
      executor: 'docker',
      docker: { image: 'busybox:latest' },
      capacity_per_instance: 1,
      max_instances: 10,
      max_use_count: 1,
      connector: { username: 'ec2-user', use_external_addr: true },
      policy: [{ idle_count: 5, idle_time: '20m' }],
      gitlab: { url: 'https://gitlab.com', token: { env: 'RUNFLEET_TOKEN_DOCKER_AUTOSCALER_EXAMPLE' } },
    },
  ]);
  const r = runner(result, 'docker autoscaler example');
  t.match(r, {
    outcome: 'imported',
    fleet: 'docker-autoscaler-example',
    file: 'fleets/docker-autoscaler-example.yaml',
  });
  t.same(settings(r.notCarried), [
    'runners.autoscaler.plugin_config.config_file',
    'runners.autoscaler.plugin_config.credentials_file',
    'runners.shell',
  ]);
  t.match(r.notCarried[0]!.why, /AWS_CONFIG_FILE/);
  t.match(r.notCarried[1]!.why, /AWS_SHARED_CREDENTIALS_FILE/);
  t.ok(settings(r.differs).includes('runners.autoscaler.state_storage'), 'state storage always on');
  t.ok(settings(r.differs).includes('runners.autoscaler.policy[0].idle_count'), 'idle_count counts slots');
  t.same(result.report.warnings, [], 'concurrent 10 = 10 × 1: no warning');
  const header = result.files[0]!.text.split('\n').slice(0, 5).join('\n');
  t.match(header, /^# yaml-language-server: \$schema=\.\.\/schemas\/fleet\.schema\.json$/m);
  t.match(header, /on 2026-03-04 from "\/etc\/gitlab-runner\/docker-autoscaler-aws\.toml"/);
  t.match(header, /runner "docker autoscaler example"/);
  assertValid(t, result);
  assertNoSecrets(t, result, text);
});

t.test('GitLab docs: instance executor, 5 jobs per instance, no region in plugin_config', async (t) => {
  const without = run('instance-aws-shared.toml');
  t.equal(without.result.complete, false, 'without a region the runner cannot be imported');
  t.same(without.result.files, []);
  t.match(runner(without.result, 'instance autoscaler example').reasons, [
    /^config\/instance-aws-shared\.toml:18:5: runners\.autoscaler\.plugin_config\.region is not set.*--region/,
  ]);

  const { result, text } = run('instance-aws-shared.toml', 'eu-west-1');
  t.equal(result.complete, true);
  t.same(fleets(result), [
    {
      name: 'instance-autoscaler-example',
      provider: { type: 'aws', region: 'eu-west-1', profile: 'ci', auto_scaling_group: 'my-linux-asg' },
      executor: 'instance',
      capacity_per_instance: 5,
      max_instances: 10,
      max_use_count: 0,
      connector: { username: 'ubuntu', use_external_addr: true, timeout: '5m' },
      policy: [{ idle_count: 5, idle_time: '20m' }],
      gitlab: {
        url: 'https://gitlab.example.com',
        token: { env: 'RUNFLEET_TOKEN_INSTANCE_AUTOSCALER_EXAMPLE' },
      },
    },
  ]);
  t.match(runner(result, 'instance autoscaler example').differs, [
    { setting: 'runners.autoscaler.plugin_config.region', how: /--region eu-west-1/ },
  ]);
  assertValid(t, result);
  assertNoSecrets(t, result, text);
});

t.test('GitLab docs: EC2 Mac with nesting: vm_isolation and its password not carried over', async (t) => {
  const { result, text } = run('instance-mac-nesting.toml');
  t.equal(result.complete, true);
  const [fleet] = fleets(result);
  t.match(fleet, {
    name: 'macos-applesilicon-autoscaler-example',
    provider: { type: 'aws', region: 'us-west-2', auto_scaling_group: 'mac2metal' },
    capacity_per_instance: 2,
    max_instances: 4,
    instance_ready_command: 'test -S /Users/ec2-user/Library/nesting.sock',
    connector: {
      username: 'ec2-user',
      key_path: 'macos-key.pem',
      use_static_credentials: true,
      timeout: '1h',
    },
    policy: [{ idle_count: 2, idle_time: '24h' }],
  });
  const r = runner(result, 'macos applesilicon autoscaler example');
  t.same(settings(r.notCarried), [
    'runners.autoscaler.plugin version',
    'runners.autoscaler.vm_isolation',
    'runners.instance',
  ]);
  t.ok(
    settings(r.differs).includes('runners.autoscaler.connector_config.key_path'),
    'relative key_path noted',
  );
  assertValid(t, result);
  assertNoSecrets(t, result, text);
});

t.test('cattle-ops terraform module: docker-autoscaler with cache, limit, global settings', async (t) => {
  const { result, text } = run('cattle-ops-docker-autoscaler.toml', 'eu-central-1');
  t.equal(result.complete, true);
  t.same(fleets(result), [
    {
      name: 'prod-gitlab-runner',
      provider: { type: 'aws', region: 'eu-central-1', auto_scaling_group: 'prod-docker-autoscaler-asg' },
      executor: 'docker',
      docker: {
        image: 'docker:27',
        pull_policy: ['always', 'if-not-present'],
        privileged: true,
        volumes: ['/cache', '/var/run/docker.sock:/var/run/docker.sock'],
      },
      capacity_per_instance: 2,
      max_instances: 8,
      max_use_count: 50,
      connector: { username: 'ec2-user', use_external_addr: true },
      policy: [{ idle_count: 4, idle_time: '15m' }],
      gitlab: {
        url: 'https://gitlab.example.com',
        request_concurrency: 4,
        check_interval: '3s',
        token: { env: 'RUNFLEET_TOKEN_PROD_GITLAB_RUNNER' },
      },
      cache: {
        type: 's3',
        shared: false,
        s3: {
          server_address: 's3.amazonaws.com',
          bucket_name: 'prod-runner-cache',
          bucket_location: 'eu-central-1',
          insecure: false,
          authentication_type: 'iam',
        },
      },
    },
  ]);
  const r = runner(result, 'prod-gitlab-runner');
  const notCarried = settings(r.notCarried);
  for (const s of [
    'runners.limit',
    'runners.environment',
    'runners.pre_build_script',
    'runners.docker.tls_verify',
    'runners.docker.helper_image',
    'runners.docker.tmpfs',
    'runners.output_limit',
  ])
    t.ok(notCarried.includes(s), `${s} reported as not carried over`);
  t.ok(
    r.carried.some((c) => c.setting === 'runners.cache.s3.BucketName' && c.field === 'cache.s3.bucket_name'),
    '[runners.cache.s3] carried over',
  );
  t.match(
    r.notCarried.find((n) => n.setting === 'runners.limit')?.why,
    /up to .* = 16 jobs, GitLab ran at most 10/,
  );
  t.match(
    r.carried.find((c) => c.setting === 'check_interval'),
    { field: 'gitlab.check_interval', at: /cattle-ops-docker-autoscaler\.toml:4:/ },
    'the global check_interval (3) is carried into the fleet',
  );
  t.notOk(
    result.report.global.differs.some((d) => d.setting === 'check_interval'),
    'a check_interval that was set differs in nothing',
  );
  t.same(settings(result.report.global.notCarried), ['sentry_dsn', 'log_format', 'listen_address']);
  t.match(result.report.warnings, [/concurrent = 10 is less than .* 16 job slots/]);
  assertValid(t, result);
  assertNoSecrets(t, result, text);
});

t.test(
  'a mixed manager: skipped executors, a Google Cloud runner not imported, a name collision',
  async (t) => {
    const { result, text } = run('mixed.toml');
    t.equal(result.complete, false, 'the Google Cloud runner could not be imported');
    t.match(
      result.report.global.differs.find((d) => d.setting === 'check_interval')?.how,
      /^not set: GitLab Runner waited its default 3s .* runfleet waits 500ms .* gitlab\.check_interval: 3s/,
      'without check_interval the shorter default is reported, with how to keep the old rate',
    );
    t.notOk(
      fleets(result).some((f) => (f.gitlab as { check_interval?: string }).check_interval !== undefined),
      'and the fleets get runfleet’s default',
    );
    t.same(
      result.report.runners.map((r) => [r.runner, r.outcome]),
      [
        ['shell on the manager', 'skipped'],
        ['k8s', 'skipped'],
        ['old docker machine', 'skipped'],
        ['GCP Pool', 'not-imported'],
        ['AWS Pool', 'imported'],
        ['AWS Pool', 'imported'],
      ],
    );
    t.match(runner(result, 'shell on the manager').reasons, [/executor shell is not an autoscaler/]);
    t.match(runner(result, 'old docker machine').reasons, [/docker-machine autoscaling is not imported/]);
    t.match(runner(result, 'GCP Pool').reasons, [
      /^config\/mixed\.toml:39:5: plugin "googlecloud:latest": fleeting plugins are not supported yet/,
    ]);
    t.same(
      result.files.map((f) => f.path),
      ['fleets/aws-pool.yaml', 'fleets/aws-pool-2.yaml'],
      'no file for the Google Cloud runner; the second AWS Pool is aws-pool-2',
    );
    t.match(
      runner(result, 'AWS Pool', 1).differs.find((d) => d.setting === 'runners.name'),
      { how: /aws-pool was taken; this fleet is aws-pool-2/ },
    );
    const [pool, pool2] = fleets(result);
    t.same(pool, {
      name: 'aws-pool',
      provider: { type: 'aws', region: 'eu-west-1', auto_scaling_group: 'aws-pool-a' },
      executor: 'docker',
      docker: {
        image: 'alpine:3.20',
        pull_policy: ['if-not-present'],
        host: 'unix:///run/user/1000/docker.sock',
      },
      capacity_per_instance: 4,
      max_instances: 3,
      delete_instances_on_shutdown: true,
      connector: { username: 'runner', protocol: 'ssh', port: 2222, keepalive: '45s' },
      policy: [
        { idle_count: 8, idle_time: '30m', scale_factor: 0.5, scale_factor_limit: 4 },
        // 40 slots cannot exist in 3 × 4: lowered (runfleet refuses more), and reported.
        {
          periods: ['* 8-18 * * mon-fri'],
          timezone: 'Europe/Berlin',
          idle_count: 12,
          idle_time: '1h',
          preemptive_mode: false,
        },
      ],
      scale_throttle: { limit: 2, burst: 3 },
      gitlab: { url: 'https://gitlab.com', token: { env: 'RUNFLEET_TOKEN_AWS_POOL' } },
    });
    t.match(pool2, {
      name: 'aws-pool-2',
      executor: 'instance',
      max_instances: 2,
      gitlab: { token: { env: 'RUNFLEET_TOKEN_AWS_POOL_2' } },
    });
    const first = runner(result, 'AWS Pool');
    t.match(
      first.carried.find((c) => c.setting === 'runners.autoscaler.policy[1].idle_count'),
      { note: /40 lowered to .* = 12 slots/ },
    );
    t.same(settings(first.notCarried), [
      'runners.autoscaler.plugin version',
      'runners.autoscaler.update_interval',
      'runners.autoscaler.update_interval_when_expecting',
      'runners.autoscaler.instance_acquire_timeout',
    ]);
    t.same(settings(result.report.global.notCarried), ['log_level', 'session_server']);
    t.match(result.report.warnings, [
      /concurrent = 4 is less than the imported fleets' total capacity of 14/,
    ]);
    assertValid(t, result);
    assertNoSecrets(t, result, text);
  },
);

t.test('values of the wrong type: file:line:col and the setting, runner not imported', async (t) => {
  const { result, text } = run('bad-values.toml');
  t.equal(result.complete, false);
  t.same(result.files, []);
  t.same(runner(result, 'bad values').reasons, [
    'config/bad-values.toml:8:5: runners.autoscaler.capacity_per_instance must be an integer',
    'config/bad-values.toml:14:7: runners.autoscaler.policy[0].idle_time is not a duration such as "20m0s"',
  ]);
  assertNoSecrets(t, result, text);
});

t.test('[runners.cache]: S3 carried over with its keys as environment references, GCS not', async (t) => {
  const { result, text } = run('s3-cache.toml');
  const [minio, gcs] = fleets(result);
  t.same(minio?.cache, {
    type: 's3',
    path: 'ci-cache',
    shared: true,
    max_uploaded_archive_size: 104857600,
    s3: {
      server_address: 'minio.internal:9000',
      bucket_name: 'runner',
      bucket_location: 'eu-west-1',
      insecure: true,
      access_key: { env: 'RUNFLEET_CACHE_S3_ACCESS_KEY_MINIO_CACHED' },
      secret_key: { env: 'RUNFLEET_CACHE_S3_SECRET_KEY_MINIO_CACHED' },
    },
  });
  const r = runner(result, 'minio cached');
  t.same(r.secretEnvs, [
    { field: 'cache.s3.access_key', env: 'RUNFLEET_CACHE_S3_ACCESS_KEY_MINIO_CACHED' },
    { field: 'cache.s3.secret_key', env: 'RUNFLEET_CACHE_S3_SECRET_KEY_MINIO_CACHED' },
  ]);
  t.match(
    renderReport(result.report),
    'cache.s3.secret_key: not written; the fleet reads it from $RUNFLEET_CACHE_S3_SECRET_KEY_MINIO_CACHED',
  );
  t.match(
    r.notCarried.find((n) => n.setting === 'runners.cache.s3.SessionToken')?.why,
    /access_key and secret_key/,
  );
  t.equal(gcs?.cache, undefined, 'a GCS cache is not carried over');
  t.match(
    runner(result, 'gcs cached').notCarried.find((n) => n.setting === 'runners.cache')?.why,
    /Type "gcs"/,
  );
  assertValid(t, result);
  assertNoSecrets(t, result, text);
});

t.test(
  '[runners.docker] wait_for_services_timeout: carried; 0 is the default; any negative is -1',
  async (t) => {
    const base = readFileSync(join(FIXTURES, 'docker-autoscaler-aws.toml'), 'utf8');
    const cases: [string, unknown, RegExp | undefined][] = [
      ['60', 60, undefined],
      ['-1', -1, undefined],
      ['-5', -1, /written as -1/],
      ['0', undefined, undefined],
    ];
    for (const [value, expected, note] of cases) {
      const text = base.replace(
        'image = "busybox:latest"',
        `image = "busybox:latest"\n    wait_for_services_timeout = ${value}`,
      );
      const result = importConfig({
        file: 'c.toml',
        sourcePath: '/c.toml',
        text,
        outDir: 'f',
        schemaPath: 's.json',
        now: NOW,
      });
      const docker = fleets(result)[0]!.docker as Record<string, unknown>;
      t.equal(docker.wait_for_services_timeout, expected, `${value} -> ${String(expected)}`);
      const r = result.report.runners[0]!;
      const carried = r.carried.find((c) => c.setting === 'runners.docker.wait_for_services_timeout');
      if (expected === undefined) {
        t.notOk(carried, `${value} is not written`);
        const how = r.differs.find((d) => d.setting === 'runners.docker.wait_for_services_timeout')?.how;
        t.match(how, /GitLab's default/, '0 is reported as the default');
      } else {
        t.ok(carried, `${value} is reported as carried`);
        if (note) t.match(carried!.note, note);
      }
      t.notOk(settings(r.notCarried).includes('runners.docker.wait_for_services_timeout'));
      assertValid(t, result);
    }
  },
);
