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
  DownloadCutShort,
  extractZipStream,
  selectFiles,
  selectionLog,
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
  /** In [0, 1); jitters the stage retry wait. @default Math.random */
  random?: () => number;
}

const MAX_DOWNLOAD_ATTEMPTS = 10;
/** Tries after the first the artifacts-downloader helper makes for one dependency, and the wait. */
const HELPER_RETRIES = 2;
const HELPER_RETRY_MS = 1000;
const STAGE_BACKOFF_FLAG = 'FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY';

/**
 * The wait before stage attempt `retry + 2` (`retry` counts from 0), as gitlab-runner's
 * jpillora/backoff with {Min: 5s, Max: 5m, Factor: 1.5, Jitter: true}: 5 s · 1.5^retry, jittered
 * uniformly between 5 s and that, at most 5 min.
 */
export function stageRetryDelayMs(retry: number, random: () => number): number {
  const min = 5000;
  const max = 300_000;
  const top = min * 1.5 ** retry;
  const jittered = random() * (top - min) + min;
  return Math.round(Math.min(max, Math.max(min, jittered)));
}

/** A duration the way Go's time.Duration prints it (`5s`, `7.25s`, `1m2.5s`), to the millisecond. */
export function goDurationString(ms: number): string {
  const minutes = Math.floor(ms / 60_000);
  const seconds = (ms - minutes * 60_000) / 1000;
  const sec = `${Number(seconds.toFixed(3))}s`;
  return minutes > 0 ? `${minutes}m${sec}` : sec;
}

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
  private readonly random: () => number;
  private expanded: ReadonlyMap<string, string> | undefined;

  constructor(private readonly opts: ArtifactStagesOptions) {
    this.time = opts.time ?? systemTime;
    this.random = opts.random ?? Math.random;
  }

  /** The job's variables expanded: made when a stage needs them (most jobs move no artifacts). */
  private get values(): ReadonlyMap<string, string> {
    this.expanded ??= new Map(expandVariables(this.opts.job.variables).map((v) => [v.key, v.value]));
    return this.expanded;
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
   * `download_artifacts`: each dependency's archive, unpacked into the project directory, with
   * gitlab-runner's two levels of retry (docs/gitlab-job-api.md §6):
   *
   * - the stage runs up to `ARTIFACT_DOWNLOAD_ATTEMPTS` times (1 by default, 1 to 10 or the stage
   *   fails; `Build.attemptExecuteStage`), every dependency again each time, whatever the error
   *   (a 404 too: the archive may not be there yet), waiting `stageRetryDelayMs` in between
   *   (`FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY`, on by default; off: no wait);
   * - within an attempt, each dependency is fetched up to three times, a second apart, only while
   *   the failure is a network error or a status other than 401/403/404 (the artifacts-downloader
   *   helper's `retryHelper{Retry: 2, RetryTime: 1s}`); `direct_download=true` on the first try
   *   only, as the helper asks for it.
   *
   * @throws BuildError naming the dependency when the last attempt failed.
   */
  async download(output: JobOutput, signal: AbortSignal): Promise<void> {
    const attempts = this.downloadAttempts();
    const backoff = this.values.get(STAGE_BACKOFF_FLAG)?.trim().toLowerCase();
    const waits = !['false', '0', 'f'].includes(backoff ?? '');
    for (let attempt = 0; ; attempt++) {
      try {
        await this.downloadAll(output, signal);
        return;
      } catch (e) {
        if (signal.aborted || attempt >= attempts - 1) throw e;
        if (waits) {
          const ms = stageRetryDelayMs(attempt, this.random);
          output.write(`Retrying in ${goDurationString(ms)}\n`, 'stdout');
          await this.time.sleep(ms, signal);
        }
      }
    }
  }

  private async downloadAll(output: JobOutput, signal: AbortSignal): Promise<void> {
    const root = this.opts.projectDir();
    for (const dep of dependenciesToDownload(this.opts.job)) {
      output.write(style.heading(`Downloading artifacts for ${dep.name} (${dep.id})...`), 'stdout');
      for (let tryNo = 0; ; tryNo++) {
        try {
          const size = await this.downloadOne(dep, root, tryNo === 0, signal);
          output.write(
            `Downloading artifacts from coordinator... ok        id=${dep.id} responseStatus=200 OK size=${size}\n`,
            'stdout',
          );
          break;
        } catch (e) {
          if (signal.aborted) throw e;
          const why = describe(e);
          const retryable = e instanceof ArtifactError && e.retryable;
          if (!retryable || tryNo >= HELPER_RETRIES) {
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
          await this.time.sleep(HELPER_RETRY_MS, signal);
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

  private async downloadOne(
    dep: JobDependency,
    root: string,
    directDownload: boolean,
    signal: AbortSignal,
  ): Promise<number> {
    const token = dep.token || this.opts.job.token;
    const { body } = await this.opts.api.download(dep.id, token, signal, { directDownload });
    // Unpacked while it arrives; a body cut short is a failed download (retried), not a broken archive.
    const result = await extractZipStream(this.opts.connector, {
      root,
      body,
      signal,
      spool: { name: 'artifacts.zip' },
    }).catch((e: unknown) => {
      if (signal.aborted || !(e instanceof DownloadCutShort)) throw e;
      throw new ArtifactError(`download failed: ${describe(e.cause)}`, undefined, true);
    });
    await result.spooled.remove();
    if (result.skipped.length > 0) {
      throw new TransferError(`unsafe entries in the archive: ${result.skipped.slice(0, 3).join(', ')}`);
    }
    return result.spooled.size;
  }

  /** `ARTIFACT_DOWNLOAD_ATTEMPTS` read as Go's strconv.Atoi would; not a number: 1. */
  private downloadAttempts(): number {
    const raw = this.values.get('ARTIFACT_DOWNLOAD_ATTEMPTS') ?? '';
    const n = /^[+-]?\d+$/.test(raw) ? Number(raw) : 1;
    if (n < 1 || n > MAX_DOWNLOAD_ATTEMPTS) {
      throw new BuildError(
        'script_failure',
        `number of attempts out of the range [1, ${MAX_DOWNLOAD_ATTEMPTS}] for stage: download_artifacts`,
        { exitCode: 1 },
      );
    }
    return n;
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
