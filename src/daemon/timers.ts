/**
 * Injected timers. The daemon never calls the global `setTimeout` directly, so the simulation
 * harness can run hours of fleet life deterministically by advancing a manual clock.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Timers {
  /** Runs `fn` once after `ms`. The returned handle cancels it; cancelling twice is harmless. */
  after(ms: number, fn: () => void): TimerHandle;
}

/** Real timers. Handles are unref'd: a pending tick never keeps the process alive on its own. */
export const systemTimers: Timers = {
  after(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** Resolves after `ms` on `timers`, or rejects when `signal` aborts. */
export function sleep(timers: Timers, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = () => {
      handle.cancel();
      reject(signal?.reason as Error);
    };
    const handle = timers.after(ms, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
