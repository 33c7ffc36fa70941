/**
 * runfleet's only retry layer for AWS calls (the SDK clients are built with `maxAttempts: 1`, so
 * retries do not multiply). Throttling, 5xx and network errors back off exponentially with full
 * jitter (delay = random × min(max, base × 2^attempt)), a bounded number of times, then surface as
 * a `FleetError` (`PROVIDER_THROTTLED` or retryable `PROVIDER`). Sleep and randomness are injected
 * so tests assert the delays instead of waiting for them.
 */
import { isFleetError } from '../../errors.js';
import { classifyAwsError, toFleetError, type AwsCallContext } from './errors.js';

export interface RetryPolicy {
  /** Total attempts including the first. @default 5 */
  maxAttempts: number;
  /** @default 200 */
  baseDelayMs: number;
  /** @default 10000 */
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 5, baseDelayMs: 200, maxDelayMs: 10_000 };

/** Backoff sleep; rejects with the signal's reason when it aborts (`Time.sleep`). */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export interface RetryDeps {
  policy: RetryPolicy;
  sleep: Sleep;
  /** In [0, 1). */
  random: () => number;
}

export interface RetryCallOptions {
  signal?: AbortSignal;
  /**
   * Whether a 5xx or network error may be retried here. Such a call may have taken effect, so
   * calls that are not idempotent on their own (TerminateInstanceInAutoScalingGroup with a
   * decrement) pass false and let their caller re-read state first. Throttled calls never ran and
   * are always retried. @default true
   */
  retryAmbiguous?: boolean;
}

/** Runs `call` with backoff; throws a translated `FleetError` when it gives up. */
export async function withAwsRetry<T>(
  ctx: AwsCallContext,
  call: () => Promise<T>,
  deps: RetryDeps,
  opts: RetryCallOptions = {},
): Promise<T> {
  const { policy } = deps;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (e) {
      if (isFleetError(e)) throw e;
      const kind = classifyAwsError(e);
      if (kind === 'aborted' || opts.signal?.aborted) throw e;
      const retryable = kind === 'throttled' || (kind === 'transient' && opts.retryAmbiguous !== false);
      if (!retryable || attempt >= policy.maxAttempts) throw toFleetError(e, ctx, attempt);
      const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      await deps.sleep(Math.floor(deps.random() * ceiling), opts.signal);
    }
  }
}
