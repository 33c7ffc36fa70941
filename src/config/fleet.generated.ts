/**
 * Generated from schemas/fleet.schema.json by scripts/gen-types.mjs (npm run gen:types).
 * Do not edit by hand: change the schema and regenerate. WrittenFleet is a fleet as written in a
 * fleet file; config/normalize.ts turns it into the normalised Fleet of model/fleet.ts.
 */

/**
 * Where instances come from. `type` selects the provider: `local` (embedded, no cloud), `static` (existing SSH hosts) or `aws` (an EC2 Auto Scaling group). Required.
 */
export type Provider = LocalProvider | StaticProvider | AwsProvider;
/**
 * One image pull policy.
 *
 * @default "always"
 */
export type PullPolicyValue = 'always' | 'if-not-present' | 'never';
/**
 * A secret, named but never written inline: `{env: NAME}` reads an environment variable, `{file: PATH}` reads a file. `gitlab.token` (required) is the runner authentication token; `cache.s3.access_key` / `secret_key` are S3 keys; `docker.auth_config` is a Docker config JSON (`{"auths": {...}}`, GitLab Runner's DOCKER_AUTH_CONFIG) with registry credentials for every job, replaced by a job's own DOCKER_AUTH_CONFIG variable.
 */
export type SecretRef = EnvSecretRef | FileSecretRef;

/**
 * One runfleet fleet: an autoscaled group of CI runner instances. A fleet file holds one or more fleets as YAML documents separated by `---`. Field names follow GitLab Runner's [runners.autoscaler] settings in snake_case.
 */
export interface WrittenFleet {
  /**
   * Unique fleet name across all fleet files: a DNS label (lowercase letters, digits and '-', 1 to 63 characters, starting and ending with a letter or digit). Required.
   */
  name: string;
  provider: Provider;
  /**
   * How jobs run on an instance: `instance` runs the job script on the instance itself, `docker` runs it in a container on the instance's Docker daemon (GitLab's docker-autoscaler). `docker` needs a `docker` block.
   *
   * @default "instance"
   */
  executor?: 'instance' | 'docker';
  docker?: DockerBlock;
  /**
   * Concurrent jobs (slots) one instance runs.
   *
   * @default 1
   */
  capacity_per_instance?: number;
  /**
   * Upper bound on instances in any state (creating, running, deleting). Required, at least 1.
   */
  max_instances: number;
  /**
   * Jobs an instance runs before it is drained and removed; 0 means unlimited.
   *
   * @default 0
   */
  max_use_count?: number;
  /**
   * Command run on each new instance before it takes jobs (e.g. `cloud-init status --wait`); a failure removes the instance. Unset by default: instances take jobs as soon as they are reachable.
   */
  instance_ready_command?: string;
  connector?: Connector;
  /**
   * Scaling policies. Each entry is in force during the minutes its `periods` match; when several match, the last one wins. Defaults to one entry that always applies.
   *
   * @default [{"periods":["* * * * *"],"timezone":"UTC","idle_count":0,"idle_time":"20m","scale_factor":0,"scale_factor_limit":0}]
   *
   * @minItems 1
   */
  policy?: PolicyEntry[];
  gitlab?: Gitlab;
  cache?: Cache;
  /**
   * `auto`: the daemon applies configuration changes of this fleet by itself. `manual`: the daemon manages capacity but leaves configuration changes to `runfleet apply`.
   *
   * @default "auto"
   */
  apply?: 'auto' | 'manual';
  /**
   * Delete every instance of the fleet when the daemon shuts down.
   *
   * @default false
   */
  delete_instances_on_shutdown?: boolean;
  scale_throttle?: ScaleThrottle;
}
/**
 * Instances are sandboxes on this machine: works out of the box, for demos and tests.
 */
export interface LocalProvider {
  /**
   * Provider type.
   *
   * @default "local"
   */
  type: 'local';
}
/**
 * A fixed set of existing SSH machines; an instance is one host.
 */
export interface StaticProvider {
  /**
   * Provider type.
   *
   * @default "static"
   */
  type: 'static';
  /**
   * SSH hosts as `host` or `host:port` (`[v6addr]:port` for IPv6); the port defaults to the connector's. Required, at least one.
   *
   * @minItems 1
   */
  hosts: string[];
}
/**
 * An EC2 Auto Scaling group: adopt an existing one with `auto_scaling_group`, or let runfleet own one with `create`. Exactly one of the two.
 */
export interface AwsProvider {
  /**
   * Provider type.
   *
   * @default "aws"
   */
  type: 'aws';
  /**
   * AWS region of the group. Required.
   */
  region: string;
  /**
   * Named profile from the AWS shared config files. Unset by default: the SDK's default credential chain is used.
   */
  profile?: string;
  /**
   * Override the AWS API endpoint (e.g. a local emulator). Unset by default.
   */
  endpoint?: string;
  /**
   * Name of an existing Auto Scaling group to adopt. The group must be dedicated to this fleet. Mutually exclusive with `create`. Unset by default.
   */
  auto_scaling_group?: string;
  create?: AwsCreate;
}
/**
 * Let runfleet create and own the Auto Scaling group `runfleet-<name>`. Mutually exclusive with `auto_scaling_group`.
 */
export interface AwsCreate {
  launch_template: LaunchTemplate;
  /**
   * VPC subnet ids the group launches into. Required, at least one.
   *
   * @minItems 1
   */
  subnets: string[];
  /**
   * Instance types; more than one makes a mixed instances policy. Unset by default: the launch template's type.
   *
   * @minItems 1
   */
  instance_types?: string[];
  /**
   * On-demand instances to keep before spot is used (mixed instances policy). Unset by default: AWS default (0).
   */
  on_demand_base_capacity?: number;
  /**
   * Percentage of on-demand instances above the base capacity; 0 means all spot. Unset by default: AWS default (100).
   */
  on_demand_percentage_above_base_capacity?: number;
  /**
   * How spot capacity is chosen across instance types. Unset by default: AWS default (lowest-price).
   */
  spot_allocation_strategy?:
    'lowest-price' | 'capacity-optimized' | 'capacity-optimized-prioritized' | 'price-capacity-optimized';
}
/**
 * The EC2 launch template instances start from, by `id` or by `name` (exactly one). Required.
 */
export interface LaunchTemplate {
  /**
   * Launch template id. Mutually exclusive with `name`. Unset by default.
   */
  id?: string;
  /**
   * Launch template name. Mutually exclusive with `id`. Unset by default.
   */
  name?: string;
  /**
   * `$Default`, `$Latest` or a version number.
   *
   * @default "$Default"
   */
  version?: string | number;
}
/**
 * Container settings for `executor: docker`; required then, refused otherwise.
 */
export interface DockerBlock {
  /**
   * Default job image, used when a job names none. Required.
   */
  image: string;
  /**
   * When to pull images: `always`, `if-not-present` or `never`, or a list of them tried in order.
   *
   * @default ["always"]
   */
  pull_policy?: PullPolicyValue | PullPolicyValue[];
  /**
   * Run job containers privileged.
   *
   * @default false
   */
  privileged?: boolean;
  /**
   * Extra volumes for job containers, as `docker run -v` takes them.
   *
   * @default []
   */
  volumes?: string[];
  /**
   * The Docker daemon address on the instance.
   *
   * @default "unix:///var/run/docker.sock"
   */
  host?: string;
  /**
   * Seconds a job waits for its services to accept connections on their exposed ports (GitLab Runner's wait_for_services_timeout); -1 does not wait.
   *
   * @default 30
   */
  wait_for_services_timeout?: number;
  auth_config?: SecretRef;
  /**
   * A Docker config file on the manager (like ~/.docker/config.json) whose `auths` are used after DOCKER_AUTH_CONFIG and before the job's own registry credentials. Credential helpers are not run. Unset by default: no file is read.
   */
  config_file?: string;
}
export interface EnvSecretRef {
  /**
   * Environment variable holding the secret.
   */
  env: string;
}
export interface FileSecretRef {
  /**
   * File holding the secret (surrounding whitespace is ignored).
   */
  file: string;
}
/**
 * How runfleet connects to instances (GitLab's connector_config).
 *
 * @default {"username":"runner","protocol":"ssh","port":22,"use_static_credentials":false,"use_external_addr":false,"keepalive":"30s","timeout":"10m"}
 */
export interface Connector {
  /**
   * User to log in as.
   *
   * @default "runner"
   */
  username?: string;
  /**
   * Connection protocol.
   *
   * @default "ssh"
   */
  protocol?: 'ssh';
  /**
   * Port to connect to.
   *
   * @default 22
   */
  port?: number;
  /**
   * Private key file. Unset by default: the provider supplies credentials (e.g. EC2 Instance Connect).
   */
  key_path?: string;
  /**
   * Use `username` and `key_path` as given instead of credentials the provider provisions.
   *
   * @default false
   */
  use_static_credentials?: boolean;
  /**
   * Connect to the instance's external address instead of its internal one.
   *
   * @default false
   */
  use_external_addr?: boolean;
  /**
   * Interval between keepalive messages on an idle connection. Numbers with units h, m, s or ms, largest unit first, e.g. `45s`, `20m`, `1h30m`.
   *
   * @default "30s"
   */
  keepalive?: string;
  /**
   * How long to keep trying to connect to a new instance. Numbers with units h, m, s or ms, largest unit first, e.g. `45s`, `20m`, `1h30m`.
   *
   * @default "10m"
   */
  timeout?: string;
  /**
   * SSH sessions runfleet opens at once on one connection to an instance; keep it at or under the server's `MaxSessions` (OpenSSH's default is 10). Each running job holds one session; when a connection is full runfleet opens another, and a session the server refuses is retried, never failing the job. Defaults to 10.
   */
  max_sessions?: number;
}
/**
 * One scaling policy entry (GitLab's [[runners.autoscaler.policy]]).
 */
export interface PolicyEntry {
  /**
   * 5-field cron expressions (minute hour day month weekday); the entry is in force during every minute one of them matches.
   *
   * @default ["* * * * *"]
   *
   * @minItems 1
   */
  periods?: string[];
  /**
   * IANA time zone the periods are read in.
   *
   * @default "UTC"
   */
  timezone?: string;
  /**
   * Idle capacity to keep, in job slots (not instances). At most max_instances × capacity_per_instance.
   *
   * @default 0
   */
  idle_count?: number;
  /**
   * How long an instance may sit idle before it is removed (instances needed for idle_count are kept). Numbers with units h, m, s or ms, largest unit first, e.g. `45s`, `20m`, `1h30m`.
   *
   * @default "20m"
   */
  idle_time?: string;
  /**
   * Extra idle capacity as a multiple of the slots in use.
   *
   * @default 0
   */
  scale_factor?: number;
  /**
   * Ceiling on the idle slots scale_factor adds; 0 means no limit.
   *
   * @default 0
   */
  scale_factor_limit?: number;
  /**
   * Request a job only when an idle slot is confirmed. Defaults to true when idle_count > 0, false otherwise (as GitLab).
   */
  preemptive_mode?: boolean;
}
/**
 * The GitLab instance the fleet takes jobs from. Unset by default: the fleet scales but runs no GitLab jobs.
 */
export interface Gitlab {
  /**
   * GitLab base URL.
   *
   * @default "https://gitlab.com"
   */
  url?: string;
  token: SecretRef;
  /**
   * Job requests the fleet keeps open at once (GitLab Runner's request_concurrency). In preemptive mode each one holds a reserved idle slot. Defaults to 1.
   *
   * @default 1
   */
  request_concurrency?: number;
  /**
   * How long the fleet waits before asking again after a job request found the queue empty (GitLab Runner's check_interval), so an empty queue costs one request per interval. A request that returns a job is followed at once by the next. Numbers with units h, m, s or ms, largest unit first, at least 100ms. runfleet's default polls six times as often as GitLab Runner's 3s, so a job queued on an idle fleet starts within half a second; a GitLab that long-polls job requests (Workhorse's apiCiLongPollingDuration) answers as soon as a job is queued whatever this is.
   *
   * @default "500ms"
   */
  check_interval?: string;
}
/**
 * Where jobs' caches (`cache:` in .gitlab-ci.yml) are kept, with GitLab Runner's [runners.cache] names in snake_case. `s3` keeps them in an S3-compatible bucket, with GitLab Runner's object names and zip format, so a runfleet fleet and a GitLab Runner fleet on one bucket share caches; `local` keeps them in a directory on the manager (`<state dir>/cache`). Unset by default: caches stay on each instance (for the local provider, in one directory under the state directory that every sandbox shares).
 */
export interface Cache {
  /**
   * `s3` (an S3-compatible bucket, needs an `s3` block) or `local` (a directory on the manager).
   */
  type: 's3' | 'local';
  /**
   * Prefix of every cache object name (GitLab Runner's `Path`). Unset by default.
   */
  path?: string;
  /**
   * Share caches between runners: drops the `runner/<short token>/` segment of object names, as GitLab Runner's `Shared` does.
   *
   * @default false
   */
  shared?: boolean;
  /**
   * Largest cache archive uploaded, in bytes; a bigger one is not uploaded (the job goes on). 0 means no limit.
   *
   * @default 0
   */
  max_uploaded_archive_size?: number;
  s3?: CacheS3;
}
/**
 * The S3-compatible bucket of an `s3` cache (GitLab Runner's [runners.cache.s3]).
 */
export interface CacheS3 {
  /**
   * `host` or `host:port` of the S3 API. Hosts other than Amazon's are addressed path-style (`https://host/bucket/key`).
   *
   * @default "s3.amazonaws.com"
   */
  server_address?: string;
  /**
   * The bucket. Required.
   */
  bucket_name: string;
  /**
   * The bucket's region. Defaults to us-east-1.
   *
   * @default "us-east-1"
   */
  bucket_location?: string;
  /**
   * Use http instead of https.
   *
   * @default false
   */
  insecure?: boolean;
  /**
   * `access-key` signs with `access_key` and `secret_key`; `iam` uses the AWS SDK's credential chain (instance profile, environment, shared config). Defaults to `access-key` when both keys are set, else `iam`.
   */
  authentication_type?: 'access-key' | 'iam';
  access_key?: SecretRef;
  secret_key?: SecretRef;
}
/**
 * Token bucket on instance creation.
 *
 * @default {"limit":100}
 */
export interface ScaleThrottle {
  /**
   * New instances per second (may be fractional).
   *
   * @default 100
   */
  limit?: number;
  /**
   * Bucket size: instances that may be created at once. Defaults to max_instances.
   */
  burst?: number;
}
