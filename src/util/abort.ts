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
