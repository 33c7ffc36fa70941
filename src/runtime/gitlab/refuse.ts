/**
 * Refusing a job runfleet cannot run as asked: the reason goes into the trace, then the job ends
 * `failed` / `runner_system_failure` / exit code 3, as GitLab Runner does.
 */
import type { JobPayload } from './job.js';
import { present, unknownPayloadFields } from './payload-fields.js';
import type { FinishOutcome, JobTrace } from './trace.js';

/** The refusal of a job whose trace is already started: the reason, then the failed final update. */
export function failRefusedJob(trace: JobTrace, message: string): Promise<FinishOutcome> {
  trace.error(message);
  trace.jobResult({ state: 'failed', message });
  return trace.finish({ state: 'failed', failureReason: 'runner_system_failure', exitCode: 3 });
}

/**
 * Why runfleet cannot run `job` as asked, or undefined. A `run` key (step-runner steps, a JSON
 * string that replaces `steps`) needs the step runner runfleet does not ship: running the job's
 * `steps` instead would report success for work that never ran.
 */
export function unsupportedJobReason(job: JobPayload): string | undefined {
  if (typeof job.run === 'string' && job.run.trim() !== '' && job.run.trim() !== '[]') {
    return 'this job uses `run:` steps (native steps), which runfleet does not support';
  }
  const extra = job as { secrets?: unknown; inputs?: unknown; suspend_options?: unknown };
  if (present(extra.secrets)) {
    const providers = new Set<string>();
    for (const s of Object.values(extra.secrets as Record<string, unknown>)) {
      for (const [k, v] of Object.entries((s ?? {}) as Record<string, unknown>))
        if (k !== 'file' && v) providers.add(k);
    }
    const which = providers.size > 0 ? ` (${[...providers].sort().join(', ')})` : '';
    return `this job uses \`secrets:\`${which}, which runfleet does not support: no secret provider is configured, and running it would leave the secrets unset`;
  }
  if (present(extra.inputs)) return 'this job uses `inputs:` (job inputs), which runfleet does not support';
  if (present(extra.suspend_options)) {
    return 'this job uses suspended environments (`suspend_options`), which runfleet does not support';
  }
  return undefined;
}

/**
 * What the job asks for that runfleet does not do yet, as warnings for the job log: the job still
 * runs (GitLab sends such jobs to every runner), but nobody should find out from a missing file.
 */
export function unsupportedJobWarnings(job: JobPayload): string[] {
  const warnings: string[] = [];
  if ((job.cache ?? []).some((c) => (c.paths?.length ?? 0) > 0)) {
    warnings.push('runfleet does not restore or save caches yet: this job runs without its cache');
  }
  if ((job.services?.length ?? 0) > 0) {
    warnings.push("runfleet does not start services yet: the job's services are not running");
  }
  for (const field of unknownPayloadFields(job)) {
    warnings.push(`the job payload has a field runfleet does not know, \`${field}\`: it is ignored`);
  }
  return warnings;
}
