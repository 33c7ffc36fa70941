/**
 * The job payload GitLab returns from `POST /api/v4/jobs/request` (201), as far as runfleet uses
 * it. Field names are GitLab's. See docs/gitlab-job-api.md §2.
 */

export interface JobVariable {
  key: string;
  value: string;
  public?: boolean;
  masked?: boolean;
  /** Write the value to a file and export the file's path instead. */
  file?: boolean;
  /** Do not expand `$VAR` references in the value. */
  raw?: boolean;
}

export interface JobStep {
  /** `script`, `after_script` or `release`. */
  name: string;
  script: string[];
  timeout?: number;
  /** `on_success` (also when empty), `on_failure` or `always`. */
  when?: string;
  allow_failure?: boolean;
}

/** `image.executor_opts` / `services[].executor_opts`: only the docker keys are known. */
export interface ExecutorOptions {
  docker?: {
    /** `linux/arm64`: pull and run that platform. */
    platform?: string;
    /** Container user, `uid[:gid]` or a name. */
    user?: string | number;
  };
}

/** A port GitLab sends with an image or service (`image:ports`); runfleet does not publish ports. */
export interface JobImagePort {
  number: number;
  protocol?: string;
  name?: string;
}

export interface JobImage {
  name: string;
  entrypoint?: string[] | null;
  pull_policy?: string[];
  ports?: JobImagePort[];
  executor_opts?: ExecutorOptions | null;
}

/** One of `services[]` (lib/api/entities/ci/job_request/service.rb). */
export interface JobService extends JobImage {
  /** One alias, or several separated by commas or spaces. */
  alias?: string | null;
  command?: string[] | null;
  variables?: JobVariable[] | null;
}

/** One of `credentials[]`: registry credentials GitLab hands the runner (the job token). */
export interface JobCredentials {
  type: string;
  url: string;
  username: string;
  /** Secret. */
  password: string;
}

/** One `cache[]` entry (gitlabhq `lib/api/entities/ci/job_request/cache.rb`). */
export interface JobCache {
  key?: string;
  untracked?: boolean;
  /** `pull`, `push`, `pull-push` (also when empty); may hold `$VAR`s. */
  policy?: string;
  paths?: string[];
  /** `on_success` (also when empty), `on_failure`, `always`. */
  when?: string;
  fallback_keys?: string[];
}

export interface GitInfo {
  repo_url: string;
  ref: string;
  sha: string;
  before_sha?: string;
  ref_type?: string;
  refspecs?: string[];
  /** 0 means full history. */
  depth?: number;
  repo_object_format?: string;
}

export interface JobPayload {
  id: number;
  /** The job token (`glcbt-…`). Secret. */
  token: string;
  allow_git_fetch?: boolean;
  job_info: { id: number; name: string; stage: string; project_id: number; project_name: string };
  git_info: GitInfo;
  runner_info: { timeout: number };
  variables: JobVariable[];
  steps: JobStep[];
  image?: JobImage | null;
  services?: JobService[] | null;
  /** Registry credentials for the job's images (`type: registry`); secret. */
  credentials?: JobCredentials[] | null;
  /** Artifacts to upload after `after_script` (§6). */
  artifacts?: JobArtifact[] | null;
  /** Caches, restored before the steps and saved after them (runtime/cache). */
  cache?: JobCache[] | null;
  /** Jobs whose artifacts this one downloads before its steps (§6). */
  dependencies?: JobDependency[] | null;
  hooks?: { name: string; script: string[] }[];
  features?: { trace_sections?: boolean; token_mask_prefixes?: string[]; failure_reasons?: string[] };
  /** Step-runner steps as a JSON string, replacing `steps` (§2); runfleet refuses such jobs. */
  run?: string;
}

/** One `artifacts[]` entry (`G:lib/api/entities/ci/job_request/artifacts.rb`). */
export interface JobArtifact {
  name?: string;
  untracked?: boolean;
  paths?: string[];
  exclude?: string[];
  /** `on_success` (also when empty), `on_failure` or `always`. */
  when?: string;
  expire_in?: string | null;
  /** `archive`, or a report type (`junit`, `dotenv`, …). */
  artifact_type?: string;
  /** `zip`, `gzip`, `raw` (and zstd formats runfleet does not write). */
  artifact_format?: string;
}

/** One `dependencies[]` entry (`G:lib/api/entities/ci/job_request/dependency.rb`). */
export interface JobDependency {
  id: number;
  name: string;
  /** The token to download with (the running job's own). Secret. */
  token?: string;
  /** Present only when the dependency has an artifacts archive. */
  artifacts_file?: { filename: string; size: number } | null;
}

/** Why a job failed, as GitLab understands it (§3). */
export type FailureReason =
  | 'script_failure'
  | 'runner_system_failure'
  | 'job_execution_timeout'
  | 'image_pull_failure'
  | 'runner_configuration_error'
  | 'runner_interrupted'
  | 'unknown_failure';
