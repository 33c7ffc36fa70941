/**
 * The state lock the daemon holds (operation `watch`) from start to stop, so no `runfleet apply`
 * writes the state meanwhile (it goes through the daemon instead). A lock left by a `watch` process that is gone is taken
 * over; any other holder is respected.
 */
import { hostname } from 'node:os';
import { ErrorCode, asError, isFleetError } from '../errors.js';
import { describeLockHolder } from '../store/index.js';
import type { LockInfo, StateStore } from '../store/store.js';
import type { Logger } from '../util/logger.js';

export interface WatchLockOptions {
  store: StateStore;
  logger: Logger;
  /** Who the lock names. @default `user@host pid N` */
  holder?: string;
  /** Whether the holder of a `watch` lock still runs. @default lockHolderAlive */
  isHolderAlive?: (lock: LockInfo) => boolean;
}

export class WatchLock {
  private held: LockInfo | undefined;

  constructor(private readonly opts: WatchLockOptions) {}

  /** @throws FleetError(LOCKED) naming the holder when another live process has the lock. */
  async take(): Promise<void> {
    this.held = await this.acquire();
  }

  /** Releases the lock if held; a failure is logged, never thrown. */
  async release(): Promise<void> {
    if (!this.held) return;
    const id = this.held.id;
    this.held = undefined;
    await this.opts.store.releaseLock(id).catch((e: unknown) => {
      this.opts.logger.error('cannot release the state lock', { error: asError(e).message, lock: id });
    });
  }

  private async acquire(): Promise<LockInfo> {
    const { store, logger } = this.opts;
    const who = this.opts.holder ?? describeLockHolder();
    try {
      return await store.acquireLock('watch', who);
    } catch (e) {
      if (!isFleetError(e) || e.code !== ErrorCode.LOCKED) throw e;
      const held = await store.currentLock();
      const alive = this.opts.isHolderAlive ?? lockHolderAlive;
      if (!held || held.operation !== 'watch' || alive(held)) throw e;
      logger.warn('taking over the lock of a watch process that is gone', {
        event: 'lock',
        previous: held.who,
        since: held.created_at,
      });
      await store.forceUnlock(held.id);
      return store.acquireLock('watch', who);
    }
  }
}

/** `user@host pid N` on this host: alive unless the pid is gone. Other hosts: assumed alive. */
export function lockHolderAlive(lock: LockInfo): boolean {
  const m = /@([^ ]+) pid (\d+)$/.exec(lock.who);
  if (!m || m[1] !== hostname()) return true;
  try {
    process.kill(Number(m[2]), 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
