/**
 * The normalised fleet: what a fleet file says, with every default filled in. Field names are the
 * ones operators write (GitLab Runner's autoscaler names, snake_case), so plan diffs read like the
 * YAML. The written form (`WrittenFleet`, generated from schemas/fleet.schema.json) is turned into
 * this by `config/normalize.ts`.
 */

/** A secret is only ever named, never written inline: read from an env var or a file at run time. */
export type SecretRef = { env: string } | { file: string };

export interface LocalProviderSpec {
  type: 'local';
}

export interface StaticProviderSpec {
  type: 'static';
  /** `host` or `host:port` entries, each an existing SSH machine. */
  hosts: string[];
}

export interface AwsLaunchTemplateSpec {
  id?: string;
  name?: string;
  /** `$Latest`, `$Default` or a version number. */
  version: string;
}

export interface AwsCreateSpec {
  launch_template: AwsLaunchTemplateSpec;
  subnets: string[];
  /** With more than one type the group uses a mixed instances policy. */
  instance_types?: string[];
  on_demand_base_capacity?: number;
  on_demand_percentage_above_base_capacity?: number;
  spot_allocation_strategy?: string;
}

export interface AwsProviderSpec {
  type: 'aws';
  region: string;
  profile?: string;
  endpoint?: string;
  /** Adopt this existing group. Mutually exclusive with `create`. */
  auto_scaling_group?: string;
  /** Let runfleet own the group's lifecycle. */
  create?: AwsCreateSpec;
}

export type ProviderSpec = LocalProviderSpec | StaticProviderSpec | AwsProviderSpec;
export type ProviderType = ProviderSpec['type'];

export type PullPolicy = 'always' | 'if-not-present' | 'never';

export interface DockerSpec {
  image: string;
  /** Tried in order, as GitLab does; a single string in YAML becomes a one-element list. */
  pull_policy: PullPolicy[];
  privileged: boolean;
  volumes: string[];
  /** The Docker socket on the instance, e.g. `unix:///var/run/docker.sock`. */
  host: string;
  /** Seconds to wait for a job's services; -1 does not wait (0 in the file means the default, 30). */
  wait_for_services_timeout: number;
  /** Registry credentials (a Docker config JSON) for every job, unless the job sets DOCKER_AUTH_CONFIG. */
  auth_config?: SecretRef;
  /** A Docker config file on the manager whose `auths` every job may use. */
  config_file?: string;
}

export interface ConnectorSpec {
  username: string;
  protocol: 'ssh';
  port: number;
  key_path?: string;
  use_static_credentials: boolean;
  use_external_addr: boolean;
  /** Duration string, e.g. `30s`. */
  keepalive: string;
  /** Duration string, e.g. `10m`. */
  timeout: string;
  /** SSH sessions at once per connection; unset means OpenSSH's default `MaxSessions`, 10. */
  max_sessions?: number;
}

export interface PolicySpec {
  /** Cron expressions; the policy is in force during every minute one of them matches. */
  periods: string[];
  /** IANA zone the periods are read in. */
  timezone: string;
  /** Idle capacity to keep, in job slots (not instances). */
  idle_count: number;
  /** Duration string: how long an instance may sit idle before it is removed. */
  idle_time: string;
  scale_factor: number;
  /** 0 means no limit. */
  scale_factor_limit: number;
  /** Request a job only when a slot is confirmed idle. Defaults to `idle_count > 0`, as GitLab. */
  preemptive_mode: boolean;
}

/**
 * The pause after a job request that found the queue empty, when a fleet file names none: an
 * empty queue costs at most 2 requests a second, and a job queued on an idle fleet is asked for
 * within half a second (GitLab Runner's 3s `check_interval` makes it wait up to 3s).
 */
export const DEFAULT_CHECK_INTERVAL = '500ms';

export interface GitlabSpec {
  url: string;
  token: SecretRef;
  /** Job requests kept open at once (GitLab Runner's `request_concurrency`). */
  request_concurrency: number;
  /** Duration string: the pause after a job request that found the queue empty (`check_interval`). */
  check_interval: string;
}

/** The bucket of an `s3` cache (GitLab Runner's `[runners.cache.s3]`). */
export interface CacheS3Spec {
  /** `host` or `host:port`. */
  server_address: string;
  bucket_name: string;
  bucket_location: string;
  /** http instead of https. */
  insecure: boolean;
  /** `access-key`: `access_key` / `secret_key`; `iam`: the SDK's credential chain. */
  authentication_type: 'access-key' | 'iam';
  access_key?: SecretRef;
  secret_key?: SecretRef;
}

/** Where jobs' caches live (GitLab Runner's `[runners.cache]`). */
export interface CacheSpec {
  /** `s3`: a bucket; `local`: a directory on the manager. */
  type: 's3' | 'local';
  /** Object name prefix; empty for none. */
  path: string;
  /** Drop the `runner/<short token>` segment of object names. */
  shared: boolean;
  /** Bytes; 0 means no limit. */
  max_uploaded_archive_size: number;
  s3?: CacheS3Spec;
}

export interface ScaleThrottleSpec {
  /** New instances per second. */
  limit: number;
  burst: number;
}

export interface Fleet {
  name: string;
  provider: ProviderSpec;
  executor: 'instance' | 'docker';
  docker?: DockerSpec;
  capacity_per_instance: number;
  max_instances: number;
  /** 0 means unlimited. */
  max_use_count: number;
  instance_ready_command?: string;
  connector: ConnectorSpec;
  /** At least one entry; the last whose periods match now wins. */
  policy: PolicySpec[];
  gitlab?: GitlabSpec;
  /** Unset: caches stay on each instance (local provider: one directory under the state dir). */
  cache?: CacheSpec;
  /** `manual`: the daemon manages capacity but leaves configuration changes to `runfleet apply`. */
  apply: 'auto' | 'manual';
  delete_instances_on_shutdown: boolean;
  scale_throttle: ScaleThrottleSpec;
}

/** Where a fleet was defined, for messages and plan output. */
export interface FleetSource {
  file: string;
  line: number;
}

/** A fleet as loaded from disk: the spec and where it came from. */
export interface DesiredFleet {
  spec: Fleet;
  source: FleetSource;
}
