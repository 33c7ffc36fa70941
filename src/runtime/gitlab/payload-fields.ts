/**
 * Every field of GitLab's job payload (`G:lib/api/entities/ci/job_request/*.rb`, EE `secrets`;
 * runner side `R:common/spec/spec.go` `Job`) and what runfleet does with it (docs/gitlab-job-api.md
 * §2, "Payload fields"). A field is used, read for information only, warned about in the job log
 * (the job runs without it), or refused (the job fails at once, naming the keyword). A field that
 * is not in this table is named in the job log, so a field GitLab adds is never silently ignored.
 */
import type { JobPayload } from './job.js';

export type FieldUse =
  /** runfleet acts on it. */
  | { kind: 'used'; by: string }
  /** Read by nobody, on purpose; `why` says why that is right. */
  | { kind: 'informational'; why: string }
  /** runfleet lacks it: a warning in the job log (refuse.ts `unsupportedJobWarnings`). */
  | { kind: 'warned' }
  /** runfleet lacks it and cannot run the job honestly: refused (refuse.ts `unsupportedJobReason`). */
  | { kind: 'refused' };

const used = (by: string): FieldUse => ({ kind: 'used', by });
const info = (why: string): FieldUse => ({ kind: 'informational', why });
const METRICS = info('queue and ownership data GitLab Runner only logs or counts');

/** Paths: `a.b` for object members; `a[]` for a list's items. */
export const PAYLOAD_FIELDS: Readonly<Record<string, FieldUse>> = {
  id: used('trace, updates'),
  token: used('job API calls, masking, clone URL'),
  allow_git_fetch: used('default GIT_STRATEGY'),
  job_info: used('names in logs'),
  'job_info.id': used('logs'),
  'job_info.name': used('logs'),
  'job_info.stage': used('logs'),
  'job_info.project_id': used('project directory fallback'),
  'job_info.project_name': used('logs'),
  'job_info.pipeline_id': METRICS,
  'job_info.project_full_path': info('CI_PROJECT_PATH (a variable) gives the same path'),
  'job_info.namespace_id': METRICS,
  'job_info.root_namespace_id': METRICS,
  'job_info.organization_id': METRICS,
  'job_info.instance_id': METRICS,
  'job_info.instance_uuid': METRICS,
  'job_info.user_id': METRICS,
  'job_info.scoped_user_id': METRICS,
  'job_info.time_in_queue_seconds': METRICS,
  'job_info.project_jobs_running_on_instance_runners_count': METRICS,
  'job_info.queue_size': METRICS,
  'job_info.queue_depth': METRICS,
  git_info: used('get_sources'),
  'git_info.repo_url': used('get_sources'),
  'git_info.ref': used('get_sources log line'),
  'git_info.sha': used('get_sources checkout'),
  'git_info.before_sha': info('CI_COMMIT_BEFORE_SHA (a variable) carries it to scripts'),
  'git_info.ref_type': info('GitLab Runner uses it only for native clone, which runfleet does not do'),
  'git_info.refspecs': used('get_sources fetch'),
  'git_info.depth': used('get_sources fetch and submodules'),
  'git_info.repo_object_format': used('get_sources init (sha256)'),
  'git_info.protected': info('CI_COMMIT_REF_PROTECTED (a variable) carries it to scripts'),
  runner_info: used('job deadline'),
  'runner_info.timeout': used('job deadline'),
  'runner_info.uuid': METRICS,
  'runner_info.runner_session_url': info('interactive web terminals: runfleet advertises no `session`'),
  variables: used('stage scripts, masking'),
  'variables[]': used('stage scripts'),
  steps: used('stage scripts'),
  'steps[]': used('stage scripts'),
  hooks: used('get_sources hooks'),
  image: used('docker executor'),
  'image.name': used('docker executor'),
  'image.entrypoint': used('docker executor'),
  'image.ports': info('ports are for services and the web terminal; runfleet publishes none'),
  'image.pull_policy': used('docker executor'),
  'image.executor_opts': used('docker executor'),
  services: { kind: 'warned' },
  artifacts: used('upload_artifacts_on_success / _on_failure (executors/artifact-stages.ts)'),
  cache: used('restore_cache / archive_cache (runtime/cache/job-caches.ts)'),
  credentials: used('docker executor registry credentials'),
  features: used('trace sections, masking, failure reasons'),
  'features.trace_sections': used('trace'),
  'features.token_mask_prefixes': used('masking'),
  'features.failure_reasons': used('final update'),
  'features.tracing': info('distributed tracing of the runner itself; runfleet does not export spans'),
  dependencies: used('download_artifacts (executors/artifact-stages.ts)'),
  run: { kind: 'refused' },
  secrets: { kind: 'refused' },
  inputs: { kind: 'refused' },
  policy_options: info('pipeline execution policy details GitLab Runner prints; variables arrive resolved'),
  suspend_options: { kind: 'refused' },
};

/** The object members the table describes one level down (lists are described as a whole). */
const NESTED = ['job_info', 'git_info', 'runner_info', 'features', 'image'] as const;

/** Paths present in `job` that the table does not describe. */
export function unknownPayloadFields(job: JobPayload): string[] {
  const out: string[] = [];
  const record = job as unknown as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!(key in PAYLOAD_FIELDS)) out.push(key);
  }
  for (const parent of NESTED) {
    const value = record[parent];
    if (!value || typeof value !== 'object' || Array.isArray(value)) continue;
    for (const key of Object.keys(value)) {
      if (!(`${parent}.${key}` in PAYLOAD_FIELDS)) out.push(`${parent}.${key}`);
    }
  }
  return out;
}

/** True when a value carries something: not null, empty string, empty list or empty object. */
export function present(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.values(value as object).some(present);
  return true;
}
