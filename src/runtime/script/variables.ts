/**
 * The variables a job's scripts see, as GitLab Runner assembles them (docs/gitlab-job-api.md §5,
 * "Variables the runner adds"): runner variables first, then the job's own, then a few more runner
 * ones; a later entry with the same key wins; every value not marked `raw` is expanded once.
 */
import type { JobPayload, JobVariable } from '../gitlab/job.js';
import { RUNFLEET_REVISION, RUNFLEET_VERSION } from '../../version.js';
import { featureFlagVariables, isHonouredFeatureFlag } from './feature-flags.js';
import { jobTimeoutSeconds, type JobLayout } from './layout.js';

export { jobVariable } from './layout.js';

/** `CI_JOB_STATUS` while stages run, and in `after_script` how the job ended. */
export type JobStatus = 'running' | 'success' | 'failed' | 'canceled' | 'timedout';

export interface VariableContext {
  layout: JobLayout;
  /** The slot the job runs in on its instance; `CI_CONCURRENT_ID`. */
  concurrentId: number;
  jobStatus: JobStatus;
  /** Executor-specific runner variables (e.g. `CI_JOB_IMAGE`), added before the job's own. */
  extra?: JobVariable[];
  /** `CI_DISPOSABLE_ENVIRONMENT` for executors whose environment is thrown away after the job. */
  disposable?: boolean;
  /**
   * GitLab's CA chain (PEM) when the manager trusts GitLab through a private CA: written to the
   * file variable `CI_SERVER_TLS_CA_FILE`, which git is told to use for GitLab's host.
   */
  tlsCaChain?: string;
  /** 1 for the first get_sources run; a retry (GET_SOURCES_ATTEMPTS) first clears the worktree. */
  getSourcesAttempt?: number;
}

function runnerVariable(key: string, value: string): JobVariable {
  return { key, value, public: true };
}

/**
 * All variables of one stage script, deduplicated (last wins, in the position of the last) and
 * expanded. File variables keep `file: true`; the script builder writes them out.
 */
export function jobVariables(job: JobPayload, ctx: VariableContext): JobVariable[] {
  const { layout } = ctx;
  const before: JobVariable[] = [
    // Resolved feature flags first; the job's own values of these flags are replaced by them.
    ...featureFlagVariables(job),
    ...(ctx.extra ?? []),
    runnerVariable('CI_BUILDS_DIR', layout.buildsDir),
    runnerVariable('CI_PROJECT_DIR', layout.projectDir),
    runnerVariable('CI_CONCURRENT_ID', String(ctx.concurrentId)),
    runnerVariable('CI_CONCURRENT_PROJECT_ID', String(ctx.concurrentId)),
    runnerVariable('CI_SERVER', 'yes'),
    runnerVariable('CI_JOB_TIMEOUT', String(jobTimeoutSeconds(job))),
    ...(ctx.tlsCaChain
      ? [{ key: 'CI_SERVER_TLS_CA_FILE', value: ctx.tlsCaChain, public: true, file: true, raw: true }]
      : []),
  ];
  const after: JobVariable[] = [
    runnerVariable(ctx.disposable ? 'CI_DISPOSABLE_ENVIRONMENT' : 'CI_SHARED_ENVIRONMENT', 'true'),
    runnerVariable('CI_RUNNER_VERSION', RUNFLEET_VERSION),
    runnerVariable('CI_RUNNER_REVISION', RUNFLEET_REVISION),
    runnerVariable('CI_RUNNER_EXECUTABLE_ARCH', `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`),
    runnerVariable('RUNNER_TEMP_PROJECT_DIR', layout.tmpDir),
  ];
  // The status comes last so a job variable cannot fake it.
  after.push(runnerVariable('CI_JOB_STATUS', ctx.jobStatus));
  // Appended in place: `before` is this call's own array, and the job's list stays untouched.
  for (const v of job.variables) if (!isHonouredFeatureFlag(v.key)) before.push(v);
  for (const v of after) before.push(v);
  return expandVariables(dedupe(before));
}

/** The last entry of each key, in its position; the list itself when no key repeats. */
function dedupe(vars: JobVariable[]): JobVariable[] {
  const last = new Map<string, number>();
  for (let i = 0; i < vars.length; i++) last.set(vars[i]!.key, i);
  return last.size === vars.length ? vars : vars.filter((v, i) => last.get(v.key) === i);
}

/**
 * Expands `$NAME` and `${NAME}` in every non-raw value against the (unexpanded) values of the list,
 * as GitLab Runner's `ExpandValue` does: an unknown name expands to nothing, `$$` is a literal `$`.
 * One level only, so a value cannot make expansion loop.
 */
export function expandVariables(vars: JobVariable[]): JobVariable[] {
  // Most values hold no `$`: those entries are kept as they are, and the lookup map is only
  // built when some value needs it (a job's variables are expanded for every stage script).
  let values: Map<string, string> | undefined;
  return vars.map((v) => {
    if (v.raw || !v.value.includes('$')) return v;
    values ??= new Map(vars.map((x) => [x.key, x.value]));
    return { ...v, value: expandValue(v.value, values) };
  });
}

export function expandValue(value: string, values: ReadonlyMap<string, string>): string {
  if (!value.includes('$')) return value;
  return value.replace(
    /\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (m, braced, bare) => {
      if (m === '$$') return '$';
      return values.get((braced ?? bare) as string) ?? '';
    },
  );
}
