import type { Fleet } from '../model/fleet.js';

/**
 * Token bucket for `scale_throttle` (GitLab's, default 100/s burst 100): how many instances may be
 * requested now. Tokens refill continuously at `limit` per second up to `burst`.
 */
export class CreationThrottle {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  /** How many instances may be requested at `nowMs` (whole tokens), without taking any. */
  available(fleet: string, spec: Fleet['scale_throttle'], nowMs: number): number {
    return Math.max(0, Math.floor(this.refill(fleet, spec, nowMs).tokens));
  }

  /** Takes up to `want` tokens; returns how many were granted. */
  take(fleet: string, spec: Fleet['scale_throttle'], want: number, nowMs: number): number {
    const b = this.refill(fleet, spec, nowMs);
    const granted = Math.max(0, Math.min(want, Math.floor(b.tokens)));
    b.tokens -= granted;
    return granted;
  }

  private refill(
    fleet: string,
    spec: Fleet['scale_throttle'],
    nowMs: number,
  ): { tokens: number; at: number } {
    const burst = Math.max(1, spec.burst);
    const b = this.buckets.get(fleet) ?? { tokens: burst, at: nowMs };
    b.tokens = Math.min(burst, b.tokens + (Math.max(0, nowMs - b.at) / 1000) * Math.max(0, spec.limit));
    b.at = Math.max(b.at, nowMs);
    this.buckets.set(fleet, b);
    return b;
  }

  /** Milliseconds until one more token is available. */
  msUntilNext(fleet: string, spec: Fleet['scale_throttle']): number {
    const b = this.buckets.get(fleet);
    if (!b || b.tokens >= 1 || spec.limit <= 0) return 0;
    return Math.ceil(((1 - b.tokens) / spec.limit) * 1000);
  }
}
