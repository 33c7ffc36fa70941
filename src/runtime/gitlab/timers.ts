/**
 * Time as the GitLab client and the trace sender see it. Injected so tests can run the protocol's
 * 3 s / 30 s / 60 s rhythms in milliseconds without changing any of the protocol's numbers.
 */
export interface Timers {
  /** Monotonic milliseconds. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Real timers whose delays are multiplied by `scale` (e.g. 0.001 turns the protocol's 3 s into 3 ms),
 * with `now()` divided by it so elapsed-time checks (the 30 s keep-alive) stay consistent.
 */
export function scaledTimers(scale: number): Timers {
  return {
    now: () => performance.now() / scale,
    setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms * scale)),
    clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  };
}

/** Resolves after `ms` on the given timers; rejects with the signal's reason when aborted. */
export function sleepOn(timers: Timers, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      timers.clearTimeout(handle);
      reject(signal?.reason);
    };
    const handle = timers.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
