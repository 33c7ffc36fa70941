/** The LOCKED error both backends raise, so the holder message is the same wherever state lives. */
import { FleetError } from '../errors.js';
import type { LockInfo } from './store.js';

export function lockedError(held: LockInfo): FleetError {
  return new FleetError(
    'LOCKED',
    `state is locked by ${held.who} (${held.operation}) since ${held.created_at}, lock id ${held.id}`,
    {
      hint: `wait for it to finish, or if that process is gone: runfleet force-unlock ${held.id}`,
      // A live holder keeps the lock for as long as it runs (a daemon: for good), so an immediate
      // retry cannot help; waiting or force-unlock can, and the hint says so.
      retryable: false,
    },
  );
}
