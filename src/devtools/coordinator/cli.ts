/**
 * `runfleet dev coordinator`: serves the test coordinator with a queue of example jobs until
 * SIGINT/SIGTERM, printing where it listens, how to point a fleet at it, and each job's progress.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { ErrorCode, FleetError } from '../../errors.js';
import type { JobPayload, JobVariable } from '../../runtime/gitlab/job.js';
import { exampleJob } from './example-job.js';
import { startCoordinator, type Coordinator } from './server.js';

/** A job as a jobs file writes it. */
export interface JobSpec {
  name: string;
  script: string[];
  after_script?: string[];
  /** A string is a public value; an object can be `{ value, masked: true }` or `{ value, file: true }`. */
  variables?: Record<string, string | Omit<JobVariable, 'key'>>;
  /** Seconds. */
  timeout?: number;
  image?: string;
  stage?: string;
}

/** A jobs file: a list of specs, or `{ repo?, jobs }` where `repo` gives sources to every job. */
export interface JobsFile {
  repo?: { url: string; sha: string; ref?: string };
  jobs: JobSpec[];
}

export interface DevCoordinatorOptions {
  /** @default 8099 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  jobsFile?: string;
  /** Runner token to accept. @default a random `glrt-…` printed at start */
  token?: string;
}

export interface DevCoordinatorIo {
  out(text: string): void;
  err(text: string): void;
}

export interface DevCoordinatorDeps {
  /** Stops the server when aborted. @default SIGINT or SIGTERM */
  signal?: AbortSignal;
  /** Called once the server listens (tests use it to reach the coordinator). */
  onReady?: (coordinator: Coordinator) => void;
}

/** Serves until the signal; resolves with the exit code (0). */
export async function runDevCoordinator(
  opts: DevCoordinatorOptions,
  io: DevCoordinatorIo,
  deps: DevCoordinatorDeps = {},
): Promise<number> {
  const token = opts.token ?? `glrt-${randomBytes(15).toString('base64url')}`;
  const jobs = opts.jobsFile ? jobsFromFile(await loadJobsFile(opts.jobsFile)) : [];
  const coordinator = await startCoordinator({
    host: opts.host ?? '127.0.0.1',
    port: opts.port ?? 8099,
    runnerTokens: [token],
    jobs,
    longPollMs: 30_000,
    onEvent: (e) => {
      if (e.type === 'assigned') io.out(`job ${e.jobId} ${e.name}: assigned to ${e.systemId}`);
      else if (e.type === 'finished') {
        const detail = e.failureReason
          ? ` (${e.failureReason}${e.exitCode ? `, exit code ${e.exitCode}` : ''})`
          : '';
        io.out(`job ${e.jobId} ${e.name}: ${e.state}${detail}`);
      }
    },
  });
  io.out(`runfleet dev coordinator listening on ${coordinator.url}  (test use only)`);
  io.out(`queued ${jobs.length} job${jobs.length === 1 ? '' : 's'}`);
  io.out('point a fleet at it:');
  io.out(`  export RUNFLEET_GITLAB_TOKEN=${opts.token === undefined ? token : '<the token you passed>'}`);
  io.out(`  gitlab: { url: ${coordinator.url}, token: { env: RUNFLEET_GITLAB_TOKEN } }`);
  deps.onReady?.(coordinator);

  await new Promise<void>((resolve) => {
    if (deps.signal) {
      if (deps.signal.aborted) resolve();
      else deps.signal.addEventListener('abort', () => resolve(), { once: true });
      return;
    }
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await coordinator.close();
  io.out('coordinator stopped');
  return 0;
}

/**
 * Reads a jobs file (YAML or JSON).
 * @throws FleetError(CONFIG_INVALID) naming the file and the offending job.
 */
export async function loadJobsFile(path: string): Promise<JobsFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new FleetError(ErrorCode.USAGE, `cannot read jobs file ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new FleetError(ErrorCode.CONFIG_INVALID, `${path}: ${(e as Error).message}`);
  }
  return validateJobsFile(doc, path);
}

export function validateJobsFile(doc: unknown, where: string): JobsFile {
  const invalid = (msg: string) =>
    new FleetError(ErrorCode.CONFIG_INVALID, `${where}: ${msg}`, {
      hint: 'write a list of jobs ({name, script: [...], after_script?, variables?, timeout?}) or {repo?, jobs: [...]}',
    });
  const root: Partial<JobsFile> | null = Array.isArray(doc)
    ? { jobs: doc as JobSpec[] }
    : (doc as Partial<JobsFile> | null);
  if (!root || typeof root !== 'object' || !Array.isArray(root.jobs)) throw invalid('no jobs list');
  root.jobs.forEach((job: unknown, i) => {
    const j = job as Partial<JobSpec> | null;
    if (!j || typeof j !== 'object') throw invalid(`jobs[${i}] is not an object`);
    if (typeof j.name !== 'string' || !j.name) throw invalid(`jobs[${i}].name must be a string`);
    if (!isStringList(j.script) || j.script.length === 0)
      throw invalid(`jobs[${i}].script must be a list of commands`);
    if (j.after_script !== undefined && !isStringList(j.after_script)) {
      throw invalid(`jobs[${i}].after_script must be a list of commands`);
    }
    if (j.timeout !== undefined && !(Number.isInteger(j.timeout) && j.timeout > 0)) {
      throw invalid(`jobs[${i}].timeout must be a positive number of seconds`);
    }
    if (j.variables !== undefined && (typeof j.variables !== 'object' || j.variables === null)) {
      throw invalid(`jobs[${i}].variables must be a map`);
    }
  });
  if (root.repo !== undefined && (typeof root.repo?.url !== 'string' || typeof root.repo?.sha !== 'string')) {
    throw invalid('repo needs url and sha');
  }
  return root as JobsFile;
}

/** Payloads for a jobs file, ids from `firstId`. */
export function jobsFromFile(file: JobsFile, firstId = 1): JobPayload[] {
  return file.jobs.map((spec, i) =>
    exampleJob(firstId + i, {
      name: spec.name,
      stage: spec.stage,
      script: spec.script,
      afterScript: spec.after_script,
      variables: spec.variables,
      timeout: spec.timeout,
      image: spec.image,
      repoUrl: file.repo?.url,
      sha: file.repo?.sha,
      ref: file.repo?.ref,
    }),
  );
}

function isStringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}
