import type { TimerHandle, Time } from './time.js';

/**
 * Rejects with `signal.reason` once `signal` aborts (at once if it has). Raced against a call that
 * might ignore its signal, so a caller is never held past the abort.
 */
export function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    if (signal.aborted) reject(signal.reason as Error);
    else signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
}

/**
 * A signal that aborts, with the same reason, when the first of `signals` does: `AbortSignal.any`
 * for signals that live about as long as the result (one job's). Each source keeps the result
 * through a listener, where `AbortSignal.any` keeps a weak reference and a finalization entry per
 * source; for the four a job combines, that was a tenth of the manager's allocations per job
 * (bench/dispatch, heap sampling). A source that outlives many results (a process-wide signal)
 * must use `AbortSignal.any`: its listeners would pile up here.
 */
export function firstAbort(...signals: AbortSignal[]): AbortSignal {
  const controller = new AbortController();
  const aborted = signals.find((s) => s.aborted);
  if (aborted) {
    controller.abort(aborted.reason);
    return controller.signal;
  }
  const onAbort = (e: Event): void => controller.abort((e.target as AbortSignal).reason);
  for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
  return controller.signal;
}

/**
 * A signal that aborts with `signal`, or once `ms` have passed on `time` (reason: a `TimeoutError`,
 * as `AbortSignal.timeout` gives). `AbortSignal.any` with `AbortSignal.timeout` costs a weak
 * reference, a finalization entry and an unref'd timer per call and keeps them until collected;
 * this costs a listener and a timer, both gone at `cancel()`. Call `cancel()` when the work ends.
 */
export function withTimeout(
  signal: AbortSignal,
  ms: number,
  time: Pick<Time, 'after'>,
): { signal: AbortSignal; cancel(): void } {
  const controller = new AbortController();
  if (signal.aborted) {
    controller.abort(signal.reason);
    return { signal: controller.signal, cancel: () => undefined };
  }
  const onAbort = (): void => controller.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  const timer: TimerHandle = time.after(ms, () =>
    controller.abort(new DOMException('The operation timed out.', 'TimeoutError')),
  );
  return {
    signal: controller.signal,
    cancel: () => {
      timer.cancel();
      signal.removeEventListener('abort', onAbort);
    },
  };
}
