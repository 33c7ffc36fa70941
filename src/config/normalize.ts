/**
 * WrittenFleet (what the operator wrote, schema-valid) -> Fleet (every default filled in). Pure.
 * The defaults here are the ones schemas/fleet.schema.json documents; a test keeps the two in step.
 */
import type {
  AwsProviderSpec,
  CacheSpec,
  ConnectorSpec,
  DockerSpec,
  Fleet,
  PolicySpec,
  ProviderSpec,
  PullPolicy,
  SecretRef,
} from '../model/fleet.js';
import { DEFAULT_CHECK_INTERVAL } from '../model/fleet.js';
import type {
  AwsProvider,
  Cache,
  Connector,
  DockerBlock,
  PolicyEntry,
  Provider,
  SecretRef as WrittenSecretRef,
  WrittenFleet,
} from './fleet.generated.js';

export const DEFAULT_GITLAB_URL = 'https://gitlab.com';
export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';
export const DEFAULT_WAIT_FOR_SERVICES_TIMEOUT = 30;
export const DEFAULT_SCALE_THROTTLE_LIMIT = 100;
export const DEFAULT_LAUNCH_TEMPLATE_VERSION = '$Default';
export const DEFAULT_S3_SERVER_ADDRESS = 's3.amazonaws.com';
export const DEFAULT_S3_BUCKET_LOCATION = 'us-east-1';

/**
 * Fills every default. Expects a document that passed the schema and the rules (see
 * `validateFleetTexts`); on other input the result is unspecified.
 */
export function normalizeFleet(written: WrittenFleet): Fleet {
  const fleet: Fleet = {
    name: written.name,
    provider: normalizeProvider(written.provider),
    executor: written.executor ?? 'instance',
    capacity_per_instance: written.capacity_per_instance ?? 1,
    max_instances: written.max_instances,
    max_use_count: written.max_use_count ?? 0,
    connector: normalizeConnector(written.connector),
    policy: (written.policy ?? [{}]).map(normalizePolicy),
    apply: written.apply ?? 'auto',
    delete_instances_on_shutdown: written.delete_instances_on_shutdown ?? false,
    scale_throttle: {
      limit: written.scale_throttle?.limit ?? DEFAULT_SCALE_THROTTLE_LIMIT,
      burst: written.scale_throttle?.burst ?? written.max_instances,
    },
  };
  if (written.docker !== undefined) fleet.docker = normalizeDocker(written.docker);
  if (written.instance_ready_command !== undefined)
    fleet.instance_ready_command = written.instance_ready_command;
  if (written.gitlab !== undefined) {
    fleet.gitlab = {
      url: written.gitlab.url ?? DEFAULT_GITLAB_URL,
      token: secretRef(written.gitlab.token),
      request_concurrency: written.gitlab.request_concurrency ?? 1,
      check_interval: written.gitlab.check_interval ?? DEFAULT_CHECK_INTERVAL,
    };
  }
  if (written.cache !== undefined) fleet.cache = normalizeCache(written.cache);
  return fleet;
}

function normalizeCache(c: Cache): CacheSpec {
  const out: CacheSpec = {
    type: c.type,
    path: c.path ?? '',
    shared: c.shared ?? false,
    max_uploaded_archive_size: c.max_uploaded_archive_size ?? 0,
  };
  if (c.s3 !== undefined) {
    const s3 = c.s3;
    const keys = s3.access_key !== undefined && s3.secret_key !== undefined;
    out.s3 = {
      server_address: s3.server_address ?? DEFAULT_S3_SERVER_ADDRESS,
      bucket_name: s3.bucket_name,
      bucket_location: s3.bucket_location ?? DEFAULT_S3_BUCKET_LOCATION,
      insecure: s3.insecure ?? false,
      // GitLab Runner's AuthType(): access-key when both keys are given, else the IAM chain.
      authentication_type: s3.authentication_type ?? (keys ? 'access-key' : 'iam'),
      ...(s3.access_key !== undefined && { access_key: secretRef(s3.access_key) }),
      ...(s3.secret_key !== undefined && { secret_key: secretRef(s3.secret_key) }),
    };
  }
  return out;
}

function normalizeProvider(p: Provider): ProviderSpec {
  switch (p.type) {
    case 'local':
      return { type: 'local' };
    case 'static':
      return { type: 'static', hosts: [...p.hosts] };
    case 'aws':
      return normalizeAws(p);
  }
}

function normalizeAws(p: AwsProvider): AwsProviderSpec {
  const out: AwsProviderSpec = { type: 'aws', region: p.region };
  if (p.profile !== undefined) out.profile = p.profile;
  if (p.endpoint !== undefined) out.endpoint = p.endpoint;
  if (p.auto_scaling_group !== undefined) out.auto_scaling_group = p.auto_scaling_group;
  if (p.create !== undefined) {
    const c = p.create;
    const lt = c.launch_template;
    out.create = {
      launch_template: {
        ...(lt.id !== undefined && { id: lt.id }),
        ...(lt.name !== undefined && { name: lt.name }),
        // YAML reads `version: 3` as a number; the AWS API and plan diffs want the string.
        version: lt.version === undefined ? DEFAULT_LAUNCH_TEMPLATE_VERSION : String(lt.version),
      },
      subnets: [...c.subnets],
      ...(c.instance_types !== undefined && { instance_types: [...c.instance_types] }),
      ...(c.on_demand_base_capacity !== undefined && { on_demand_base_capacity: c.on_demand_base_capacity }),
      ...(c.on_demand_percentage_above_base_capacity !== undefined && {
        on_demand_percentage_above_base_capacity: c.on_demand_percentage_above_base_capacity,
      }),
      ...(c.spot_allocation_strategy !== undefined && {
        spot_allocation_strategy: c.spot_allocation_strategy,
      }),
    };
  }
  return out;
}

function normalizeDocker(d: DockerBlock): DockerSpec {
  const pull: PullPolicy[] =
    d.pull_policy === undefined
      ? ['always']
      : Array.isArray(d.pull_policy)
        ? [...d.pull_policy]
        : [d.pull_policy];
  return {
    image: d.image,
    pull_policy: pull,
    privileged: d.privileged ?? false,
    volumes: [...(d.volumes ?? [])],
    host: d.host ?? DEFAULT_DOCKER_HOST,
    // GitLab Runner: 0 (or unset) is the default of 30 s; negative does not wait.
    wait_for_services_timeout: d.wait_for_services_timeout || DEFAULT_WAIT_FOR_SERVICES_TIMEOUT,
    ...(d.auth_config ? { auth_config: secretRef(d.auth_config) } : {}),
    ...(d.config_file ? { config_file: d.config_file } : {}),
  };
}

function normalizeConnector(c: Connector | undefined): ConnectorSpec {
  const out: ConnectorSpec = {
    username: c?.username ?? 'runner',
    protocol: c?.protocol ?? 'ssh',
    port: c?.port ?? 22,
    use_static_credentials: c?.use_static_credentials ?? false,
    use_external_addr: c?.use_external_addr ?? false,
    keepalive: c?.keepalive ?? '30s',
    timeout: c?.timeout ?? '10m',
  };
  if (c?.key_path !== undefined) out.key_path = c.key_path;
  // Only when written: a fleet that leaves it out keeps the spec (and plan hash) it had.
  if (c?.max_sessions !== undefined) out.max_sessions = c.max_sessions;
  return out;
}

function normalizePolicy(p: PolicyEntry): PolicySpec {
  const idleCount = p.idle_count ?? 0;
  return {
    periods: [...(p.periods ?? ['* * * * *'])],
    timezone: p.timezone ?? 'UTC',
    idle_count: idleCount,
    idle_time: p.idle_time ?? '20m',
    scale_factor: p.scale_factor ?? 0,
    scale_factor_limit: p.scale_factor_limit ?? 0,
    // GitLab's PreemptiveModeEnabled: on unless set, exactly when idle capacity is kept.
    preemptive_mode: p.preemptive_mode ?? idleCount > 0,
  };
}

function secretRef(ref: WrittenSecretRef): SecretRef {
  return 'env' in ref ? { env: ref.env } : { file: ref.file };
}
