/**
 * Synthetic jobs: demand without GitLab, for demos, end-to-end tests and the benchmark. Each job
 * goes through the real slot scheduler (acquire → hold → release), so it scales the fleet exactly
 * as a real job would. Not a job runtime: nothing is executed on the instance.
 */
import { asError } from '../errors.js';
import type { SlotScheduler } from '../runtime/slots/scheduler.js';
import type { Logger } from '../util/logger.js';
import type { Time } from '../util/time.js';

export interface SyntheticJobsRequest {
  /** How many jobs to start now. */
  jobs: number;
  /** How long each job holds its slot once acquired. */
  durationMs: number;
  /** Release as failed with a broken instance (to exercise draining). @default false */
  breakInstance?: boolean;
}

/** Starts the jobs and returns at once; each runs in the background. */
export function startSyntheticJobs(
  slots: SlotScheduler,
  time: Time,
  logger: Logger,
  fleet: string,
  req: SyntheticJobsRequest,
): void {
  for (let i = 0; i < req.jobs; i++) {
    void (async () => {
      const acquisition = await slots.acquire(fleet);
      logger.debug('synthetic job started', {
        fleet,
        instance: acquisition.instanceId,
        slot: acquisition.slot,
      });
      await time.sleep(req.durationMs);
      await slots.release(acquisition, req.breakInstance ? { failed: true, instanceBroken: true } : {});
    })().catch((e: unknown) => logger.warn('synthetic job failed', { fleet, error: asError(e).message }));
  }
}
