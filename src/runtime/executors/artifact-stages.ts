/**
 * The artifact stages around a job's steps (docs/gitlab-job-api.md §6, §6a), run by the manager
 * against the instance's project directory: `download_artifacts` before the first step, and
 * `upload_artifacts_on_success` / `_on_failure` after `after_script`. The bytes stream between
 * the instance (sh + tar, through the job's connector) and GitLab (runtime/transfer); nothing
 * runs in the job's image, so any image works.
 */
import type { Connector } from '../connectors/connector.js';
import { ArtifactError, type ArtifactsApi } from '../gitlab/artifacts-api.js';
import type { JobArtifact, JobDependency, JobPayload } from '../gitlab/job.js';
import { style } from '../gitlab/trace-format.js';
import { expandValue, expandVariables } from '../script/variables.js';
import {
  archiveStream,
  compressionLevel,
  extractZip,
  selectFiles,
  selectionLog,
  spoolToFile,
  TransferError,
  type ArchiveFormat,
} from '../transfer/index.js';
import { BuildError, type JobOutput } from './executor.js';
import { systemTime, type Time } from '../../util/time.js';

export interface ArtifactStagesOptions {
  job: JobPayload;
  api: ArtifactsApi;
  /** The instance the project directory is on (docker: the host the build dir is mounted from). */
  connector: Connector;
  /** The project directory on that instance; read once the executor is prepared. */
  projectDir: () => string;
  /** Retry waits. @default systemTime */
  time?: Time;
}

const MAX_DOWNLOAD_ATTEMPTS = 10;

/** The artifacts `job` uploads in the stage for `succeeded` (each entry's `when`). */
export function artifactsToUpload(job: JobPayload, succeeded: boolean): JobArtifact[] {
  return (job.artifacts ?? []).filter((a) => {
    if ((a.paths?.length ?? 0) === 0 && !a.untracked) return false;
    const when = a.when || 'on_success';
    return when === 'always' || (when === 'on_failure' ? !succeeded : succeeded);
  });
}

/** The dependencies whose artifacts `job` downloads. */
export function dependenciesToDownload(job: JobPayload): JobDependency[] {
  return (job.dependencies ?? []).filter((d) => d.artifacts_file?.filename);
}

export class ArtifactStages {
  private readonly time: Time;
  private readonly values: ReadonlyMap<string, string>;

  constructor(private readonly opts: ArtifactStagesOptions) {
    this.time = opts.time ?? systemTime;
    this.values = new Map(expandVariables(opts.job.variables).map((v) => [v.key, v.value]));
  }

  /** Whether `download_artifacts` has work. */
  get downloads(): boolean {
    return dependenciesToDownload(this.opts.job).length > 0;
  }

  /** The name of the upload stage for a job that `succeeded` so far, or undefined if it has nothing to upload. */
  uploadStage(succeeded: boolean): string | undefined {
    if (artifactsToUpload(this.opts.job, succeeded).length === 0) return undefined;
    return succeeded ? 'upload_artifacts_on_success' : 'upload_artifacts_on_failure';
  }

  /**
   * `download_artifacts`: each dependency's archive, unpacked into the project directory.
   * @throws BuildError naming the dependency when it cannot be had after the attempts.
   */
  async download(output: JobOutput, signal: AbortSignal): Promise<void> {
    const attempts = this.downloadAttempts();
    const root = this.opts.projectDir();
    for (const dep of dependenciesToDownload(this.opts.job)) {
      output.write(style.heading(`Downloading artifacts for ${dep.name} (${dep.id})...`), 'stdout');
      for (let attempt = 1; ; attempt++) {
        try {
          const size = await this.downloadOne(dep, root, signal);
          output.write(
            `Downloading artifacts from coordinator... ok        id=${dep.id} responseStatus=200 OK size=${size}\n`,
            'stdout',
          );
          break;
        } catch (e) {
          if (signal.aborted) throw e;
          const final = e instanceof ArtifactError && !e.retryable;
          const why = describe(e);
          if (final || attempt >= attempts) {
            output.write(
              style.error(`Downloading artifacts from coordinator... ${why}  id=${dep.id}`),
              'stdout',
            );
            throw new BuildError(
              'script_failure',
              `cannot download the artifacts of ${dep.name} (job ${dep.id}): ${why}`,
              { exitCode: 1 },
            );
          }
          output.write(
            style.warning(`Downloading artifacts from coordinator... ${why}  id=${dep.id}, retrying`),
            'stdout',
          );
          await this.time.sleep(1000 * attempt, signal);
        }
      }
    }
  }

  /**
   * `upload_artifacts_on_success` / `_on_failure`. Resolves with why the upload failed (the job
   * then fails if it had succeeded), or undefined when every artifact went up.
   */
  async upload(succeeded: boolean, output: JobOutput, signal: AbortSignal): Promise<string | undefined> {
    const job = this.opts.job;
    const root = this.opts.projectDir();
    let failure: string | undefined;
    output.write(
      style.heading(
        succeeded ? 'Uploading artifacts for successful job' : 'Uploading artifacts for failed job',
      ),
      'stdout',
    );
    for (const artifact of artifactsToUpload(job, succeeded)) {
      const type = artifact.artifact_type || 'archive';
      const format = (artifact.artifact_format || (type === 'archive' ? 'zip' : 'gzip')) as
        ArchiveFormat | string;
      output.write('Uploading artifacts...\n', 'stdout');
      try {
        if (format !== 'zip' && format !== 'gzip' && format !== 'raw') {
          throw new TransferError(`artifact format ${format} is not supported by runfleet`);
        }
        const selection = await selectFiles(this.opts.connector, {
          root,
          paths: (artifact.paths ?? []).map((p) => this.expand(p)),
          exclude: (artifact.exclude ?? []).map((p) => this.expand(p)),
          untracked: artifact.untracked ?? false,
          signal,
        });
        for (const line of selectionLog(selection)) {
          output.write(line.level === 'warning' ? style.warning(line.text) : `${line.text}\n`, 'stdout');
        }
        if (selection.paths.length === 0) {
          output.write(style.error('No files to upload'), 'stdout');
          continue;
        }
        const level = compressionLevel(this.values.get('ARTIFACT_COMPRESSION_LEVEL'));
        const res = await this.opts.api.upload({
          jobId: job.id,
          token: job.token,
          filename: artifactFilename(this.expand(artifact.name ?? ''), format),
          artifactType: type,
          artifactFormat: format,
          ...(artifact.expire_in ? { expireIn: artifact.expire_in } : {}),
          body: (s) =>
            archiveStream(this.opts.connector, { root, paths: selection.paths, format, level, signal: s }),
          signal,
          onRetry: (attempt, why) =>
            output.write(
              style.warning(
                `Uploading artifacts as "${type}" to coordinator... ${why}  id=${job.id} (attempt ${attempt}), retrying`,
              ),
              'stdout',
            ),
        });
        output.write(
          `Uploading artifacts as "${type}" to coordinator... ${res.statusText}  id=${job.id} responseStatus=${res.statusText}\n`,
          'stdout',
        );
      } catch (e) {
        if (signal.aborted) throw e;
        const why = describe(e);
        output.write(
          style.error(`Uploading artifacts as "${type}" to coordinator... ${why}  id=${job.id}`),
          'stdout',
        );
        failure ??= `uploading artifacts as "${type}" failed: ${why}`;
      }
    }
    return failure;
  }

  private async downloadOne(dep: JobDependency, root: string, signal: AbortSignal): Promise<number> {
    const token = dep.token || this.opts.job.token;
    const { body } = await this.opts.api.download(dep.id, token, signal);
    const spooled = await spoolToFile(body, { name: 'artifacts.zip', signal });
    try {
      const summary = await extractZip(this.opts.connector, { root, zipFile: spooled.path, signal });
      if (summary.skipped.length > 0) {
        throw new TransferError(`unsafe entries in the archive: ${summary.skipped.slice(0, 3).join(', ')}`);
      }
      return spooled.size;
    } finally {
      await spooled.remove();
    }
  }

  private downloadAttempts(): number {
    const n = Number(this.values.get('ARTIFACT_DOWNLOAD_ATTEMPTS') ?? '1');
    return Number.isInteger(n) && n >= 1 ? Math.min(n, MAX_DOWNLOAD_ATTEMPTS) : 1;
  }

  private expand(value: string): string {
    return expandValue(value, this.values);
  }
}

/** gitlab-runner's `artifactFilename`: the base name (or `default`) with the format's extension. */
export function artifactFilename(name: string, format: string): string {
  let base = name.split('/').filter(Boolean).at(-1) ?? '';
  if (base === '' || base === '.') base = 'default';
  if (format === 'zip') return `${base}.zip`;
  if (format === 'gzip') return `${base}.gz`;
  return base;
}

function describe(e: unknown): string {
  if (e instanceof ArtifactError) return e.message;
  if (e instanceof TransferError) return e.message;
  return e instanceof Error ? e.message : String(e);
}
