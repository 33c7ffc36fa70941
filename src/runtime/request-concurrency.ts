/**
 * Adaptive request concurrency, as GitLab Runner computes it with FF_USE_ADAPTIVE_REQUEST_CONCURRENCY
 * (on by default; `commands/builds_helper.go`, docs/gitlab-job-api.md §2): `request_concurrency`
 * is the ceiling, and the number of job requests allowed open at once follows the answers, AIMD
 * style. A request that returned a job grows the limit by 10 %, one that returned none (or failed)
 * shrinks it by 5 %, and one GitLab pushed back on (a 429 or 5xx the transport retried) halves it:
 * success after a retry is not evidence of spare server capacity. The limit stays within
 * [1, request_concurrency]; ceil(limit) requests may be open.
 *
 * Pure arithmetic: no timers, no I/O. The job loop owns the requests and reports their outcome.
 */

/** A clean job pickup: +10 %. */
export const INCREASE_FACTOR = 1.1;
/** A clean empty (or failed) answer: -5 %. */
export const DECREASE_FACTOR = 0.95;
/** Server-side back-pressure (the request was retried): halve. */
export const RETRIED_DECREASE_FACTOR = 0.5;

/** How one job request ended, for `AdaptiveConcurrency.record`. */
export interface RequestOutcome {
  /** It returned a job. */
  job: boolean;
  /** GitLab answered a retried status (429, 5xx) on the way, whatever the final answer. */
  retried: boolean;
}

export class AdaptiveConcurrency {
  private value = 1;

  /** @param ceiling `request_concurrency` now (read on every use: a reload may change it). */
  constructor(private readonly ceiling: () => number) {}

  /** The computed limit, a real number in [1, request_concurrency] (GitLab Runner's adaptive limit metric). */
  get limit(): number {
    return Math.min(this.value, this.max());
  }

  /** Requests that may be open at once now: the limit rounded up. */
  get allowed(): number {
    return Math.ceil(this.limit);
  }

  record(outcome: RequestOutcome): void {
    const factor = outcome.retried
      ? RETRIED_DECREASE_FACTOR
      : outcome.job
        ? INCREASE_FACTOR
        : DECREASE_FACTOR;
    this.value = Math.min(this.max(), Math.max(1, this.value * factor));
  }

  private max(): number {
    return Math.max(1, Math.floor(this.ceiling()));
  }
}
