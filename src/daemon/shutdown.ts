/**
 * The two slow steps of a graceful stop: letting running jobs finish within the grace period, and
 * removing the idle instances of fleets with `delete_instances_on_shutdown` (busy ones are left
 * alone).
 */
import type { DesiredFleet } from '../model/fleet.js';
import type { SlotScheduler } from '../runtime/slots/scheduler.js';
import { retryRemoval, type SyncDeps } from './instance-sync.js';
import type { Logger } from '../util/logger.js';
import type { Time } from '../util/time.js';

/**
 * Resolves once no job holds a slot or `graceMs` has passed, whichever is first; jobs still
 * running then are logged as abandoned. The caller must have stopped new acquisitions.
 * Resolves at once when no job runs.
 */
export async function waitForRunningJobs(
  slots: SlotScheduler,
  time: Time,
  logger: Logger,
  graceMs: number,
): Promise<void> {
  const running = slots.activeAcquisitions();
  if (running === 0) return;
  logger.info('waiting for running jobs', { event: 'shutdown', jobs: running, grace_ms: graceMs });
  const grace = new AbortController();
  const done = await Promise.race([
    slots.whenNoAcquisitions().then(() => true),
    time.sleep(graceMs, grace.signal).then(
      () => false,
      () => true,
    ),
  ]);
  grace.abort();
  if (!done) {
    logger.warn('grace period over; jobs still running are abandoned', {
      event: 'shutdown',
      jobs: slots.activeAcquisitions(),
    });
  }
}

/** Removes the idle instances of every fleet in `desired` that asks for it. */
export async function deleteInstancesOnShutdown(
  desired: readonly DesiredFleet[],
  deps: SyncDeps,
): Promise<void> {
  for (const d of desired) {
    if (!d.spec.delete_instances_on_shutdown) continue;
    const rows = await deps.store.listInstances(d.spec.name);
    const idle = deps.slots.claimForRemoval(
      d.spec.name,
      rows.map((r) => r.id),
      'scale_in',
    );
    const busy = rows.length - idle.length;
    deps.logger.info('delete_instances_on_shutdown', {
      event: 'shutdown',
      fleet: d.spec.name,
      idle: idle.length,
      busy,
    });
    if (idle.length > 0) await retryRemoval(d.spec, idle, deps);
  }
}
