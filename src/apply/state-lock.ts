/**
 * The state lock, taken the same way by `runfleet apply` (from observing to its last step) and by
 * `runfleet watch` (from start to stop), so no two processes write one state. A lock whose holder
 * is a process on this host that is gone (killed mid-apply, a crashed daemon) is taken over with a
 * warning; any other holder is respected and named in the LOCKED error.
 */
import { hostname } from 'node:os';
import { ErrorCode, asError, isFleetError } from '../errors.js';
import { describeLockHolder } from '../store/index.js';
import type { LockInfo, StateStore } from '../store/store.js';
import { silentLogger, type Logger } from '../util/logger.js';

export interface StateLockOptions {
  store: StateStore;
  /** What the holder does: `apply`, `watch`. Shown to whoever finds the state locked. */
  operation: string;
  /** @default silentLogger */
  logger?: Logger;
  /** Who the lock names. @default `user@host pid N` */
  holder?: string;
  /** Whether a lock's holder still runs. @default lockHolderAlive */
  isHolderAlive?: (lock: LockInfo) => boolean;
  /** Told when the lock of a gone process is taken over (the CLI says so to its user). */
  onTakeOver?: (previous: LockInfo) => void;
}

export class StateLock {
  private held: LockInfo | undefined;

  constructor(private readonly opts: StateLockOptions) {}

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
      (this.opts.logger ?? silentLogger).error('cannot release the state lock', {
        error: asError(e).message,
        lock: id,
      });
    });
  }

  private async acquire(): Promise<LockInfo> {
    const { store, operation } = this.opts;
    const who = this.opts.holder ?? describeLockHolder();
    try {
      return await store.acquireLock(operation, who);
    } catch (e) {
      if (!isFleetError(e) || e.code !== ErrorCode.LOCKED) throw e;
      const held = await store.currentLock();
      const alive = this.opts.isHolderAlive ?? lockHolderAlive;
      if (!held || alive(held)) throw e;
      (this.opts.logger ?? silentLogger).warn('taking over the lock of a process that is gone', {
        event: 'lock',
        previous: held.who,
        operation: held.operation,
        since: held.created_at,
      });
      this.opts.onTakeOver?.(held);
      await store.forceUnlock(held.id);
      return store.acquireLock(operation, who);
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
