/**
 * Refusing a job runfleet cannot run as asked (§2 "Refusing a job"): the reason goes into the
 * trace, then the job ends `failed` / `runner_system_failure` / exit code 3, as GitLab Runner does.
 */
import type { JobPayload } from './job.js';
import { JobTrace, type FinishOutcome, type JobTraceOptions } from './trace.js';

export async function refuseJob(
  opts: Omit<JobTraceOptions, 'job' | 'onCancel'> & { job: JobPayload },
  message: string,
): Promise<FinishOutcome | 'dropped'> {
  const trace = new JobTrace(opts);
  if ((await trace.start()) === 'drop') {
    await trace.stop();
    return 'dropped';
  }
  trace.error(message);
  trace.jobResult({ state: 'failed', message });
  return trace.finish({ state: 'failed', failureReason: 'runner_system_failure', exitCode: 3 });
}
