import t, { type Test } from 'tap';
import { fleetSchema, normalizeFleet, type WrittenFleet } from '../../src/config/index.js';
import type { Fleet } from '../../src/model/fleet.js';

const minimal: WrittenFleet = { name: 'mini', provider: { type: 'local' }, max_instances: 3 };

t.test('a minimal fleet gets every default', async (t) => {
  t.strictSame(normalizeFleet(minimal), {
    name: 'mini',
    provider: { type: 'local' },
    executor: 'instance',
    capacity_per_instance: 1,
    max_instances: 3,
    max_use_count: 0,
    connector: {
      username: 'runner',
      protocol: 'ssh',
      port: 22,
      use_static_credentials: false,
      use_external_addr: false,
      keepalive: '30s',
      timeout: '10m',
    },
    policy: [
      {
        periods: ['* * * * *'],
        timezone: 'UTC',
        idle_count: 0,
        idle_time: '20m',
        scale_factor: 0,
        scale_factor_limit: 0,
        preemptive_mode: false,
      },
    ],
    apply: 'auto',
    delete_instances_on_shutdown: false,
    scale_throttle: { limit: 100, burst: 3 },
  } satisfies Fleet);
});

t.test('derived defaults: preemptive_mode follows idle_count, burst follows max_instances', async (t) => {
  const fleet = normalizeFleet({
    ...minimal,
    max_instances: 7,
    scale_throttle: { limit: 2 },
    policy: [{ idle_count: 2 }, { idle_count: 2, preemptive_mode: false }, { periods: ['* 9-17 * * *'] }],
  });
  t.strictSame(
    fleet.policy.map((p) => p.preemptive_mode),
    [true, false, false],
  );
  t.strictSame(fleet.scale_throttle, { limit: 2, burst: 7 });
});

t.test('docker: a single pull policy becomes a list; aws: version numbers become strings', async (t) => {
  const docker = normalizeFleet({
    ...minimal,
    executor: 'docker',
    docker: { image: 'alpine', pull_policy: 'never' },
  });
  t.strictSame(docker.docker, {
    image: 'alpine',
    pull_policy: ['never'],
    privileged: false,
    volumes: [],
    host: 'unix:///var/run/docker.sock',
    wait_for_services_timeout: 30,
  });
  const waits = [0, -1, 5].map(
    (w) =>
      normalizeFleet({
        ...minimal,
        executor: 'docker',
        docker: { image: 'alpine', wait_for_services_timeout: w },
      }).docker?.wait_for_services_timeout,
  );
  t.strictSame(waits, [30, -1, 5], 'wait_for_services_timeout: 0 is the default of 30 s, -1 does not wait');
  const auth = normalizeFleet({
    ...minimal,
    executor: 'docker',
    docker: { image: 'alpine', auth_config: { env: 'DOCKER_AUTH' }, config_file: '/etc/rf/config.json' },
  }).docker;
  t.match(auth, { auth_config: { env: 'DOCKER_AUTH' }, config_file: '/etc/rf/config.json' });
  const aws = normalizeFleet({
    ...minimal,
    provider: {
      type: 'aws',
      region: 'eu-west-1',
      create: { launch_template: { id: 'lt-0abc', version: 3 }, subnets: ['subnet-0a'] },
    },
  });
  t.strictSame(aws.provider, {
    type: 'aws',
    region: 'eu-west-1',
    create: { launch_template: { id: 'lt-0abc', version: '3' }, subnets: ['subnet-0a'] },
  });
  const defaultVersion = normalizeFleet({
    ...minimal,
    provider: {
      type: 'aws',
      region: 'eu-west-1',
      create: { launch_template: { name: 'ci' }, subnets: ['subnet-0a'] },
    },
  });
  t.match(defaultVersion.provider, { create: { launch_template: { name: 'ci', version: '$Default' } } });
});

t.test('a secret reference stays a reference; gitlab url defaults to gitlab.com', async (t) => {
  t.strictSame(normalizeFleet({ ...minimal, gitlab: { token: { env: 'RUNNER_TOKEN' } } }).gitlab, {
    url: 'https://gitlab.com',
    token: { env: 'RUNNER_TOKEN' },
    request_concurrency: 1,
    check_interval: '500ms',
  });
  t.strictSame(
    normalizeFleet({
      ...minimal,
      gitlab: {
        url: 'http://127.0.0.1:8080',
        token: { file: '/t' },
        request_concurrency: 4,
        check_interval: '3s',
      },
    }).gitlab,
    {
      url: 'http://127.0.0.1:8080',
      token: { file: '/t' },
      request_concurrency: 4,
      check_interval: '3s',
    },
  );
});

t.test('normalising does not share arrays with the written fleet', async (t) => {
  const written: WrittenFleet = { ...minimal, provider: { type: 'static', hosts: ['a', 'b'] } };
  const fleet = normalizeFleet(written);
  (fleet.provider as { hosts: string[] }).hosts.push('c');
  t.strictSame(written.provider, { type: 'static', hosts: ['a', 'b'] });
});

type SchemaNode = Record<string, unknown> & {
  $ref?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  oneOf?: SchemaNode[];
};

/**
 * Walks the schema alongside a normalised fleet and the fleet as written: wherever the schema
 * documents a default and the fleet did not set the field, the normalised fleet must hold exactly
 * that value. Keeps the schema's docs and normalize.ts in step.
 */
function checkDefaults(t: Test, node: SchemaNode, value: unknown, written: unknown, path: string): void {
  const defs = fleetSchema().definitions as Record<string, SchemaNode>;
  const resolve = (n: SchemaNode): SchemaNode =>
    n.$ref ? resolve(defs[n.$ref.replace('#/definitions/', '')]!) : n;
  const schema = resolve(node);
  if (written === undefined && 'default' in schema) {
    t.match(value, schema.default as object, `${path} holds the schema default`);
  }
  if (schema.oneOf && value && typeof value === 'object') {
    const type = (value as { type?: string }).type;
    const branch = schema.oneOf.map(resolve).find((b) => b.properties?.type?.const === type);
    if (branch) checkDefaults(t, branch, value, written, path);
  }
  if (schema.items && Array.isArray(value)) {
    value.forEach((v, i) =>
      checkDefaults(t, schema.items!, v, (written as unknown[] | undefined)?.[i], `${path}[${i}]`),
    );
  }
  if (!schema.properties || !value || typeof value !== 'object') return;
  for (const [key, child] of Object.entries(schema.properties)) {
    const v = (value as Record<string, unknown>)[key];
    const w = (written as Record<string, unknown> | undefined)?.[key];
    if (w === undefined && 'default' in resolve(child)) t.not(v, undefined, `${path}.${key} is filled`);
    if (v !== undefined) checkDefaults(t, child, v, w, `${path}.${key}`);
  }
}

t.test('every default the schema documents is the one normalise fills', async (t) => {
  const fleets: WrittenFleet[] = [
    minimal,
    {
      ...minimal,
      executor: 'docker',
      docker: { image: 'alpine' },
      connector: {},
      policy: [{}, { idle_count: 1 }],
      gitlab: { token: { env: 'T' } },
      scale_throttle: {},
    },
    {
      ...minimal,
      provider: {
        type: 'aws',
        region: 'eu-west-1',
        create: { launch_template: { name: 'ci' }, subnets: ['subnet-0a'] },
      },
    },
  ];
  for (const written of fleets) {
    checkDefaults(t, fleetSchema() as SchemaNode, normalizeFleet(written), written, written.name);
  }
});

t.test("cache: GitLab Runner's defaults, access-key only when both keys are given", async (t) => {
  const s3 = { bucket_name: 'runner-cache' };
  t.strictSame(normalizeFleet({ ...minimal, cache: { type: 's3', s3 } }).cache, {
    type: 's3',
    path: '',
    shared: false,
    max_uploaded_archive_size: 0,
    s3: {
      server_address: 's3.amazonaws.com',
      bucket_name: 'runner-cache',
      bucket_location: 'us-east-1',
      insecure: false,
      authentication_type: 'iam',
    },
  });
  const keyed = normalizeFleet({
    ...minimal,
    cache: { type: 's3', s3: { ...s3, access_key: { env: 'A' }, secret_key: { file: '/run/s' } } },
  });
  t.equal(keyed.cache?.s3?.authentication_type, 'access-key');
  t.same(keyed.cache?.s3?.secret_key, { file: '/run/s' }, 'a reference stays a reference');
  t.strictSame(normalizeFleet({ ...minimal, cache: { type: 'local' } }).cache, {
    type: 'local',
    path: '',
    shared: false,
    max_uploaded_archive_size: 0,
  });
  t.equal(normalizeFleet(minimal).cache, undefined, 'no cache block: none');
});
