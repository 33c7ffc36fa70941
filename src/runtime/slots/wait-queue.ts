/**
 * Jobs waiting in `acquire` for a slot of one fleet (GitLab's pending tasks), first come first
 * served. Each waiter leaves the queue exactly once: served, timed out, aborted by its signal, or
 * refused; whichever comes first also cancels its timer and drops its abort listener, so a waiter
 * never settles twice and never leaks a timer.
 */
import type { TimerHandle, Time } from '../../util/time.js';
import { ErrorCode, FleetError } from '../../errors.js';
import type { Acquisition } from './types.js';

export interface Waiter {
  fleet: string;
  resolve: (a: Acquisition) => void;
  reject: (e: Error) => void;
  timer: TimerHandle;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

export interface WaitRequest {
  fleet: string;
  time: Time;
  /** How long the job may wait (the fleet's acquire timeout). */
  timeoutMs: number;
  signal: AbortSignal | undefined;
  /** Called once the waiter is queued. */
  onQueued: () => void;
  /** Called when the timeout removed the waiter; returns the error the promise rejects with. */
  onTimeout: () => Error;
  /** Called when the signal removed the waiter, before the promise rejects with its reason. */
  onAbort: () => void;
}

export class WaitQueue {
  private readonly waiters: Waiter[] = [];

  get length(): number {
    return this.waiters.length;
  }

  /**
   * Queues a job; the promise resolves when `next()` hands the waiter a slot, and rejects with
   * `onTimeout()`'s error, the signal's reason, or the refusal.
   */
  wait(req: WaitRequest): Promise<Acquisition> {
    return new Promise<Acquisition>((resolve, reject) => {
      const waiter: Waiter = {
        fleet: req.fleet,
        resolve,
        reject,
        signal: req.signal,
        timer: req.time.after(req.timeoutMs, () => {
          this.remove(waiter);
          reject(req.onTimeout());
        }),
        onAbort: () => {
          this.remove(waiter);
          req.onAbort();
          reject(req.signal?.reason as Error);
        },
      };
      req.signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.waiters.push(waiter);
      req.onQueued();
    });
  }

  /** Takes the longest-waiting job off the queue; the caller resolves it with its slot. */
  next(): Waiter | undefined {
    const waiter = this.waiters.shift();
    if (waiter) detach(waiter);
    return waiter;
  }

  /** Rejects every waiting job with FleetError(APPLY_ABORTED, `why`). */
  refuseAll(why: string): void {
    for (const w of this.waiters.splice(0)) {
      detach(w);
      w.reject(new FleetError(ErrorCode.APPLY_ABORTED, why));
    }
  }

  private remove(w: Waiter): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) this.waiters.splice(i, 1);
    detach(w);
  }
}

function detach(w: Waiter): void {
  w.timer.cancel();
  w.signal?.removeEventListener('abort', w.onAbort);
}

/** The rejection of a job that found no slot within the fleet's acquire timeout. */
export function acquireTimeoutError(fleet: string, timeoutMs: number): FleetError {
  return new FleetError(
    ErrorCode.PROVIDER,
    `no slot on a ready instance of fleet ${fleet} within ${timeoutMs} ms`,
    {
      hint: 'instances are slow to become ready or max_instances is reached; see runfleet status',
      retryable: true,
    },
  );
}
