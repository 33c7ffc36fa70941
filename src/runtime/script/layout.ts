/**
 * Where a job lives on disk (docs/gitlab-job-api.md §5, "Directories"): the builds root, the project
 * directory under it, and `<project>.tmp` beside it for file variables and the git template.
 * Paths are POSIX: they name places on the instance or in the container, not on the manager.
 */
import { posix } from 'node:path';
import type { JobPayload } from '../gitlab/job.js';
import { BuildError } from '../executors/executor.js';
import { expandValue } from './variables.js';

export interface JobLayout {
  /** `CI_BUILDS_DIR`: absolute. */
  buildsDir: string;
  /** `CI_PROJECT_DIR`: `<buildsDir>[/<runnerDir>]/<concurrentId>/<project path>`. */
  projectDir: string;
  /** `<projectDir>.tmp`: file variables, git template. Emptied by `cleanup_file_variables`. */
  tmpDir: string;
}

/** GitLab's default when `runner_info.timeout` is 0 or missing. */
export const DEFAULT_JOB_TIMEOUT_SECONDS = 7200;

export function jobTimeoutSeconds(job: JobPayload): number {
  const t = job.runner_info?.timeout ?? 0;
  return t > 0 ? t : DEFAULT_JOB_TIMEOUT_SECONDS;
}

/**
 * The project's path under the builds dir: `CI_PROJECT_PATH` if GitLab sent one, else the repo
 * URL's path without `.git`, else `project-<id>`. Only plain segments survive, so a hostile
 * variable cannot point the build outside its builds dir.
 */
export function projectPath(job: JobPayload): string {
  const fromVariable = jobVariable(job, 'CI_PROJECT_PATH');
  let candidate = fromVariable ?? '';
  if (!candidate) {
    try {
      candidate = new URL(job.git_info.repo_url).pathname;
    } catch {
      candidate = job.git_info.repo_url;
    }
    candidate = candidate.replace(/\.git\/?$/, '');
  }
  const segments = candidate
    .split('/')
    .filter((s) => s !== '' && s !== '.' && s !== '..' && /^[A-Za-z0-9._-]+$/.test(s));
  return segments.length > 0 ? segments.join('/') : `project-${job.job_info.project_id}`;
}

export interface JobLayoutOptions {
  /**
   * Whether the job may choose its directory with `GIT_CLONE_PATH` (GitLab Runner's
   * `custom_build_dir`: on for the docker executor, off for the instance executor). @default true
   */
  customBuildDir?: boolean;
  /**
   * On a builds root that several runners may share (an instance's), the segment that keeps each
   * runner's projects apart: its short token, so the project is
   * `<buildsDir>/<short token>/<concurrent id>/<project path>`, as in GitLab Runner's shared
   * builds directories. Without it, `<buildsDir>/<concurrent id>/<project path>`.
   */
  runnerDir?: string;
}

/**
 * The layout of `job` under `buildsDir` (absolute POSIX path) for slot `concurrentId`. With
 * `GIT_CLONE_PATH` the project directory is that path (`$CI_BUILDS_DIR` and the other runner
 * variables expanded), which must lie within the builds dir, as in GitLab Runner.
 * @throws BuildError(runner_configuration_error) for a GIT_CLONE_PATH that is not allowed
 */
export function jobLayout(
  job: JobPayload,
  buildsDir: string,
  concurrentId: number,
  opts: JobLayoutOptions = {},
): JobLayout {
  const clonePath = jobVariable(job, 'GIT_CLONE_PATH');
  if (clonePath) {
    if (opts.customBuildDir === false) {
      throw new BuildError(
        'runner_configuration_error',
        'setting GIT_CLONE_PATH is not allowed, enable `custom_build_dir` feature',
        { hint: 'the instance executor does not let jobs choose their directory (as GitLab Runner)' },
      );
    }
    const values = new Map(job.variables.map((v) => [v.key, v.value]));
    values.set('CI_BUILDS_DIR', buildsDir);
    values.set('CI_CONCURRENT_ID', String(concurrentId));
    values.set('CI_CONCURRENT_PROJECT_ID', String(concurrentId));
    const dir = posix.normalize(expandValue(clonePath, values)).replace(/\/+$/, '');
    const rel = posix.relative(buildsDir, dir);
    if (!dir.startsWith('/') || rel === '' || rel === '..' || rel.startsWith('../')) {
      throw new BuildError(
        'runner_configuration_error',
        `the GIT_CLONE_PATH="${clonePath}" has to be within "${buildsDir}"`,
      );
    }
    return { buildsDir, projectDir: dir, tmpDir: `${dir}.tmp` };
  }
  const runnerDir = opts.runnerDir === undefined ? '' : runnerSegment(opts.runnerDir);
  const projectDir = posix.join(buildsDir, runnerDir, String(concurrentId), projectPath(job));
  return { buildsDir, projectDir, tmpDir: `${projectDir}.tmp` };
}

/**
 * A runner's directory name under a shared builds root: the short token's letters, digits, `_`
 * and `-` (never `.` or `..`, so it stays under the root); `runner` if none are left.
 */
export function runnerSegment(shortToken: string): string {
  return shortToken.replace(/[^A-Za-z0-9_-]/g, '') || 'runner';
}

/** Value of the last variable named `key` among the job's own variables. */
export function jobVariable(job: Pick<JobPayload, 'variables'>, key: string): string | undefined {
  for (let i = job.variables.length - 1; i >= 0; i--) {
    const v = job.variables[i];
    if (v?.key === key) return v.value;
  }
  return undefined;
}
