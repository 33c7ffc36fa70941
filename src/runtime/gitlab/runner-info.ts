/**
 * Who runfleet says it is to GitLab: the `info` object sent with every runner call, the feature flags
 * it advertises, the `system_id` runner managers are keyed by, and how failure reasons are mapped
 * to what this GitLab accepts. See docs/gitlab-job-api.md §1 and §3.
 */
import { createHmac, randomInt } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { RUNFLEET_REVISION } from '../../version.js';
import type { FailureReason } from './job.js';

/**
 * Every key of GitLab Runner's `FeaturesInfo` (`R:common/network.go`), in its order, true only
 * where runfleet does it: GitLab routes jobs by them (§1 "Job matching"), so advertising one we
 * lack would hand us jobs we cannot run correctly. GitLab Runner sends false keys too, so does
 * runfleet. The one table to change when runfleet learns a feature (artifacts, cache, services…).
 */
export const RUNFLEET_FEATURES = {
  variables: true,
  // Set per executor below (DOCKER_FEATURES).
  image: false,
  services: false,
  // §6: upload_artifacts_* (archive zip), reports as gzip, raw files, artifacts:exclude
  // (executors/artifact-stages.ts over runtime/transfer).
  artifacts: true,
  // restore_cache / archive_cache with fallback_keys (runtime/cache/job-caches.ts); GitLab drops a
  // job with fallback_keys as runner_unsupported for a runner without fallback_cache_keys.
  cache: true,
  fallback_cache_keys: true,
  // Set per executor below (instance: jobs share the host).
  shared: false,
  upload_multiple_artifacts: true,
  upload_raw_artifacts: true,
  session: false,
  terminal: false,
  refspecs: true,
  masking: true,
  proxy: false,
  raw_variables: true,
  artifacts_exclude: true,
  // A `release` step needs release-cli support runfleet does not ship.
  multi_build_steps: false,
  trace_reset: true,
  trace_checksum: true,
  trace_size: true,
  // `secrets:` jobs are refused (refuse.ts): no Vault or other secret provider.
  vault_secrets: false,
  cancelable: true,
  return_exit_code: true,
  service_variables: false,
  service_multiple_aliases: false,
  image_executor_opts: false,
  service_executor_opts: false,
  // JobTrace turns `Job-Status: canceling` into onCancel('graceful'), which runs after_script (§3).
  cancel_gracefully: true,
  native_steps_integration: false,
  two_phase_job_commit: false,
  job_inputs: false,
} as const satisfies Record<string, boolean>;

export type FeatureKey = keyof typeof RUNFLEET_FEATURES;

/**
 * What the docker executor adds (executors/docker-executor.ts, docker-services.ts), as GitLab
 * Runner's docker executor claims them (`executors/docker/docker_command.go`).
 */
const DOCKER_FEATURES = {
  image: true,
  services: true,
  service_variables: true,
  service_multiple_aliases: true,
  image_executor_opts: true,
  service_executor_opts: true,
} as const satisfies Partial<Record<FeatureKey, boolean>>;

export type FeaturesInfo = Record<string, boolean>;

/** The `info` object of §1, exactly as GitLab stores it. */
export interface RunnerInfo {
  name: string;
  version: string;
  revision: string;
  platform: string;
  architecture: string;
  executor: string;
  shell: string;
  features: FeaturesInfo;
  config: { gpus: string };
  labels: Record<string, string>;
}

export interface RunnerInfoOptions {
  /** @default 'runfleet' */
  name?: string;
  version: string;
  /** @default 'unknown' */
  revision?: string;
  /**
   * runfleet's executor (`instance`, `docker`), sent under GitLab Runner's name for the same thing
   * (`instance`, `docker-autoscaler`). @default 'instance'
   */
  executor?: string;
  /** Extra or overriding flags, e.g. `{ image: true }` for the Docker executor. */
  features?: FeaturesInfo;
  labels?: Record<string, string>;
}

/** runfleet's executors under GitLab Runner's executor names. */
const GITLAB_EXECUTOR: Record<string, string> = { instance: 'instance', docker: 'docker-autoscaler' };

/** Go's GOARCH names, which GitLab shows, from Node's `process.arch`. */
const GO_ARCH: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm' };

export function runnerInfo(opts: RunnerInfoOptions): RunnerInfo {
  const executor = GITLAB_EXECUTOR[opts.executor ?? 'instance'] ?? opts.executor ?? 'instance';
  return {
    name: opts.name ?? 'runfleet',
    version: opts.version,
    revision: opts.revision ?? RUNFLEET_REVISION,
    platform: process.platform,
    architecture: GO_ARCH[process.arch] ?? process.arch,
    executor,
    shell: 'bash',
    features: {
      ...RUNFLEET_FEATURES,
      ...(executor.startsWith('docker') ? DOCKER_FEATURES : { shared: true }),
      ...opts.features,
    },
    config: { gpus: '' },
    labels: opts.labels ?? {},
  };
}

/**
 * `User-Agent` of every call (§0: `gitlab-runner <ver> (…)`), in GitLab Runner's
 * `(<branch>; <runtime>; <os>/<arch>)` shape with runfleet named in the branch slot, so proxies
 * and log filters that key on the runner's agent see one, and GitLab's logs still tell us apart.
 */
export function runnerUserAgent(version: string): string {
  const arch = GO_ARCH[process.arch] ?? process.arch;
  return `gitlab-runner ${version} (runfleet; node${process.versions.node}; ${process.platform}/${arch})`;
}

/** Reasons sent as they are whatever the server lists (`R:common/failure_reason_mapper.go`). */
const ALWAYS_SUPPORTED: ReadonlySet<string> = new Set([
  'script_failure',
  'runner_system_failure',
  'job_execution_timeout',
]);

/** Fallbacks for older servers that do not list a reason in `features.failure_reasons`. */
const COMPATIBLE_REASON: Readonly<Record<string, FailureReason>> = {
  image_pull_failure: 'runner_system_failure',
  runner_configuration_error: 'script_failure',
  runner_external_dependency_failure: 'runner_system_failure',
};

/**
 * Maps a failure reason to one this GitLab accepts (§3): the three basic reasons always pass, others
 * only if listed in `supported` (the job's `features.failure_reasons`); otherwise a compatible
 * fallback or `unknown_failure`. An empty reason becomes `script_failure`.
 */
export function mapFailureReason(
  reason: string | undefined,
  supported: readonly string[] | undefined,
): string {
  if (!reason) return 'script_failure';
  if (ALWAYS_SUPPORTED.has(reason)) return reason;
  if (supported?.includes(reason)) return reason;
  return COMPATIBLE_REASON[reason] ?? 'unknown_failure';
}

const SYSTEM_ID_FORMAT = /^[sr]_[a-zA-Z0-9]{12}$/;
const ALPHANUMERIC = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

export interface SystemIdOptions {
  /** Where the id is persisted (GitLab Runner's `.runner_system_id`). */
  path: string;
  /** @default ['/etc/machine-id', '/var/lib/dbus/machine-id'] */
  machineIdPaths?: string[];
}

/**
 * The runner manager's `system_id` (§1): the persisted one if the file holds a valid id; otherwise
 * `s_` + 12 hex of HMAC-SHA256(key = machine id, message = "gitlab-runner"), or `r_` + 12 random
 * alphanumerics without a machine id, written to `path` so restarts keep the same manager.
 */
export async function loadSystemId(opts: SystemIdOptions): Promise<string> {
  const stored = await readFile(opts.path, 'utf8').then(
    (s) => s.trim(),
    () => '',
  );
  if (SYSTEM_ID_FORMAT.test(stored)) return stored;
  const id = await computeSystemId(opts.machineIdPaths ?? ['/etc/machine-id', '/var/lib/dbus/machine-id']);
  await mkdir(dirname(opts.path), { recursive: true });
  // Write-then-rename so a crash never leaves a half-written id that would re-key the manager.
  const tmp = `${opts.path}.${process.pid}.tmp`;
  await writeFile(tmp, id + '\n', { mode: 0o600 });
  await rename(tmp, opts.path);
  return id;
}

/** Computes a fresh system id; exported for tests. */
export async function computeSystemId(machineIdPaths: string[]): Promise<string> {
  for (const path of machineIdPaths) {
    const machineId = await readFile(path, 'utf8').then(
      (s) => s.trim(),
      () => '',
    );
    if (machineId) {
      return 's_' + createHmac('sha256', machineId).update('gitlab-runner').digest('hex').slice(0, 12);
    }
  }
  let random = '';
  for (let i = 0; i < 12; i++) random += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
  return 'r_' + random;
}

/**
 * `CI_RUNNER_SHORT_TOKEN` (§5): the token without its `glrt-`/`glcbt-`/`t1_` prefixes, first 9
 * characters. Safe to log: GitLab itself shows it.
 */
export function shortToken(token: string): string {
  let rest = token;
  for (const prefix of ['glrt-', 'glcbt-', 't1_']) {
    if (rest.startsWith(prefix)) rest = rest.slice(prefix.length);
  }
  return rest.slice(0, 9);
}
