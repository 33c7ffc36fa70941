/**
 * The coordinator's jobs: queue, states as Rails moves them, stored traces and final updates.
 * No HTTP here; `server.ts` maps requests onto these operations.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { crc32 } from 'node:zlib';
import { ErrorCode, FleetError } from '../../errors.js';
import type { JobPayload } from '../../runtime/gitlab/job.js';

export type CoordinatorJobState = 'pending' | 'running' | 'canceling' | 'canceled' | 'success' | 'failed';

/** Rails' `failure_reason` enum (`G:app/models/concerns/enums/ci/commit_status.rb`), abridged to what runners send. */
export const KNOWN_FAILURE_REASONS: readonly string[] = [
  'unknown_failure',
  'script_failure',
  'api_failure',
  'stuck_or_timeout_failure',
  'runner_system_failure',
  'missing_dependency_failure',
  'runner_unsupported',
  'stale_schedule',
  'job_execution_timeout',
  'archived_failure',
  'unmet_prerequisites',
  'scheduler_failure',
  'data_integrity_failure',
  'forward_deployment_failure',
  'user_blocked',
  'project_deleted',
  'ci_quota_exceeded',
  'pipeline_loop_detected',
  'no_matching_runner',
  'trace_size_exceeded',
  'builds_disabled',
  'environment_creation_failure',
  'deployment_rejected',
  'failed_outdated_deployment_job',
  'protected_environment_failure',
  'insufficient_bridge_permissions',
  'downstream_bridge_project_not_found',
  'invalid_bridge_trigger',
  'upstream_bridge_project_not_found',
  'insufficient_upstream_permissions',
  'bridge_pipeline_is_child_pipeline',
  'downstream_pipeline_creation_failed',
  'secrets_provider_not_found',
  'reached_max_descendant_pipelines_depth',
  'ip_restriction_failure',
  'reached_max_pipeline_hierarchy_size',
  'reached_downstream_pipeline_trigger_rate_limit',
  'image_pull_failure',
  'runner_configuration_error',
  'runner_provisioning_timeout',
];

/** One `PUT /jobs/:id` as received. */
export interface JobUpdateRecord {
  state: string;
  failure_reason?: string;
  exit_code?: number;
  output?: { checksum?: string; bytesize?: number };
}

export interface CoordinatorJobView {
  id: number;
  name: string;
  state: CoordinatorJobState;
  /** As stored by Rails: unknown reasons become `unknown_failure`. */
  failure_reason?: string;
  exit_code?: number;
  /** The stored trace as UTF-8. */
  log: string;
  logBytes: number;
  /** `crc32:%08x` of the stored trace. */
  storedChecksum: string;
  /** From the final update. */
  checksum?: string;
  bytesize?: number;
  /** Whether the final update's checksum and size matched the stored trace; undefined before it. */
  checksumOk?: boolean;
  updates: JobUpdateRecord[];
  patches: number;
  artifacts: { filename: string; size: number; query: Record<string, string> }[];
  /** Variables of its dotenv report, as GitLab passes them to dependent jobs. */
  dotenv: Record<string, string>;
  /** `system_id` of the runner manager the job went to. */
  assignedTo?: string;
}

/** An uploaded artifact, kept on disk. */
export interface StoredArtifact {
  filename: string;
  /** Where the coordinator keeps its bytes. */
  path: string;
  size: number;
  query: Record<string, string>;
}

/**
 * What a job needs of a runner's `info.features`, as `Ci::Build::RUNNER_FEATURES` decides it
 * (`G:app/models/ci/build.rb`): reports need `upload_multiple_artifacts`, `artifacts:exclude`
 * needs `artifacts_exclude`, a `release` step `multi_build_steps`, cache fallback keys
 * `fallback_cache_keys`, a merge request ref `refspecs`.
 */
export function requiredRunnerFeatures(job: JobPayload): string[] {
  const need: string[] = [];
  const artifacts = job.artifacts ?? [];
  if (artifacts.some((a) => (a.artifact_type ?? 'archive') !== 'archive'))
    need.push('upload_multiple_artifacts');
  if (artifacts.some((a) => (a.exclude?.length ?? 0) > 0)) need.push('artifacts_exclude');
  if (job.steps.some((s) => s.name === 'release')) need.push('multi_build_steps');
  const cache = (job.cache ?? []) as { fallback_keys?: string[] }[];
  if (cache.some((c) => (c.fallback_keys?.length ?? 0) > 0)) need.push('fallback_cache_keys');
  if (job.git_info.ref_type === 'branch' && /^refs\/merge-requests\//.test(job.git_info.ref))
    need.push('refspecs');
  return need;
}

interface StoredJob {
  payload: JobPayload;
  state: CoordinatorJobState;
  failureReason?: string;
  exitCode?: number;
  trace: Buffer;
  checksum?: string;
  bytesize?: number;
  checksumOk?: boolean;
  updates: JobUpdateRecord[];
  patches: number;
  artifacts: StoredArtifact[];
  dotenv: Record<string, string>;
  assignedTo?: string;
}

export function traceChecksum(trace: Uint8Array): string {
  return 'crc32:' + (crc32(trace) >>> 0).toString(16).padStart(8, '0');
}

export class JobStore {
  private readonly jobs = new Map<number, StoredJob>();
  private queueVersion = randomBytes(5).toString('hex');
  /** Emits `change` (job id) on every job change and `queue` on every queue version bump. */
  readonly events = new EventEmitter();

  constructor() {
    this.events.setMaxListeners(0);
  }

  get version(): string {
    return this.queueVersion;
  }

  enqueue(payload: JobPayload): void {
    if (this.jobs.has(payload.id)) {
      throw new FleetError(ErrorCode.USAGE, `coordinator: job ${payload.id} is already queued`);
    }
    this.jobs.set(payload.id, {
      payload,
      state: 'pending',
      trace: Buffer.alloc(0),
      updates: [],
      patches: 0,
      artifacts: [],
      dotenv: {},
    });
    this.bumpQueue();
    this.changed(payload.id);
  }

  get(id: number): StoredJob | undefined {
    return this.jobs.get(id);
  }

  /**
   * The oldest pending job, now `running` and assigned (Rails' `run!` on pick). A job needing a
   * feature the runner did not advertise is dropped as `runner_unsupported` on the way, as
   * `Ci::RegisterJobService` does: GitLab does not keep it for another runner.
   */
  assignNext(systemId: string, features: Record<string, unknown> = {}): JobPayload | undefined {
    for (const job of this.jobs.values()) {
      if (job.state !== 'pending') continue;
      if (requiredRunnerFeatures(job.payload).some((f) => features[f] !== true)) {
        job.state = 'failed';
        job.failureReason = 'runner_unsupported';
        this.changed(job.payload.id);
        continue;
      }
      job.state = 'running';
      job.assignedTo = systemId;
      this.changed(job.payload.id);
      return this.withDependencies(job.payload);
    }
    return undefined;
  }

  /**
   * What Rails adds to a payload from the jobs it depends on: `artifacts_file` when the
   * dependency has an archive, the running job's token, and the dotenv variables of their
   * reports (`G:lib/api/entities/ci/job_request/dependency.rb`, `Ci::Build#dependency_variables`).
   */
  private withDependencies(payload: JobPayload): JobPayload {
    if (!payload.dependencies?.length) return payload;
    const extra: JobPayload['variables'] = [];
    const dependencies = payload.dependencies.map((d) => {
      const dep = this.jobs.get(d.id);
      const archive = dep?.artifacts
        .filter((a) => (a.query['artifact_type'] ?? 'archive') === 'archive')
        .at(-1);
      for (const [key, value] of Object.entries(dep?.dotenv ?? {})) extra.push({ key, value, public: false });
      return {
        ...d,
        token: payload.token,
        ...(archive ? { artifacts_file: { filename: archive.filename, size: archive.size } } : {}),
      };
    });
    payload.dependencies = dependencies;
    payload.variables = [...payload.variables, ...extra];
    return payload;
  }

  hasPending(): boolean {
    return [...this.jobs.values()].some((j) => j.state === 'pending');
  }

  /** A user cancel: `graceful` puts a running job in `canceling`; `hard` (or a pending job) ends it. */
  cancel(id: number, mode: 'graceful' | 'hard'): void {
    const job = this.require(id);
    if (job.state === 'pending' || (mode === 'hard' && isProcessing(job.state))) job.state = 'canceled';
    else if (job.state === 'running') job.state = 'canceling';
    this.changed(id);
  }

  /** Records a PUT. Final states end the job; a canceling job ends as `canceled` (Rails' drop). */
  recordUpdate(id: number, update: JobUpdateRecord): void {
    const job = this.require(id);
    job.updates.push(update);
    if (update.state === 'success' || update.state === 'failed') {
      const checksum = update.output?.checksum;
      job.checksum = checksum;
      job.bytesize = update.output?.bytesize;
      job.checksumOk =
        checksum === undefined
          ? undefined
          : checksum === traceChecksum(job.trace) &&
            (job.bytesize === undefined || job.bytesize === job.trace.length);
      job.exitCode = update.exit_code;
      if (update.state === 'failed') {
        const reason = update.failure_reason ?? 'unknown_failure';
        job.failureReason = KNOWN_FAILURE_REASONS.includes(reason) ? reason : 'unknown_failure';
      }
      job.state = job.state === 'canceling' ? 'canceled' : update.state;
    }
    this.changed(id);
  }

  /** Appends at `start`; returns the stored length, which the caller compares to decide 416. */
  appendTrace(id: number, start: number, bytes: Buffer): { accepted: boolean; length: number } {
    const job = this.require(id);
    if (start !== job.trace.length) return { accepted: false, length: job.trace.length };
    job.trace = Buffer.concat([job.trace, bytes]);
    job.patches++;
    this.changed(id);
    return { accepted: true, length: job.trace.length };
  }

  /** Test hook: makes the stored trace shorter, as if the server lost its tail. */
  truncateTrace(id: number, length: number): void {
    const job = this.require(id);
    job.trace = job.trace.subarray(0, Math.max(0, Math.min(length, job.trace.length)));
    this.changed(id);
  }

  addArtifact(id: number, artifact: StoredArtifact, dotenv?: Record<string, string>): void {
    const job = this.require(id);
    job.artifacts.push(artifact);
    if (dotenv) job.dotenv = { ...job.dotenv, ...dotenv };
    this.changed(id);
  }

  /** The job's archive (`artifact_type=archive`), which `GET /jobs/:id/artifacts` serves. */
  archive(id: number): StoredArtifact | undefined {
    return this.jobs
      .get(id)
      ?.artifacts.filter((a) => (a.query['artifact_type'] ?? 'archive') === 'archive')
      .at(-1);
  }

  view(id: number): CoordinatorJobView | undefined {
    const job = this.jobs.get(id);
    return job ? toView(job) : undefined;
  }

  views(): CoordinatorJobView[] {
    return [...this.jobs.values()].map(toView);
  }

  /** Any job whose token this is (dependency downloads authenticate with the running job's token). */
  byToken(token: string): StoredJob | undefined {
    return [...this.jobs.values()].find((j) => j.payload.token === token);
  }

  private require(id: number): StoredJob {
    const job = this.jobs.get(id);
    if (!job) throw new FleetError(ErrorCode.USAGE, `coordinator: no job ${id}`);
    return job;
  }

  private bumpQueue(): void {
    this.queueVersion = randomBytes(5).toString('hex');
    this.events.emit('queue');
  }

  private changed(id: number): void {
    this.events.emit('change', id);
  }
}

/** Rails accepts trace and state calls only while a job is running or canceling. */
export function isProcessing(state: CoordinatorJobState): boolean {
  return state === 'running' || state === 'canceling';
}

function toView(job: StoredJob): CoordinatorJobView {
  return {
    id: job.payload.id,
    name: job.payload.job_info.name,
    state: job.state,
    failure_reason: job.failureReason,
    exit_code: job.exitCode,
    log: job.trace.toString('utf8'),
    logBytes: job.trace.length,
    storedChecksum: traceChecksum(job.trace),
    checksum: job.checksum,
    bytesize: job.bytesize,
    checksumOk: job.checksumOk,
    updates: job.updates.map((u) => ({ ...u })),
    patches: job.patches,
    artifacts: job.artifacts.map((a) => ({
      filename: a.filename,
      size: a.size,
      query: { ...a.query },
    })),
    dotenv: { ...job.dotenv },
    assignedTo: job.assignedTo,
  };
}
