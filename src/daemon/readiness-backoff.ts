/**
 * Per-fleet pauses after readiness failures: a fleet whose new instances keep failing their
 * heartbeat or `instance_ready_command` stops creating new ones for a growing while, instead of
 * the create/delete loop of taskscaler#26. The reconcile pass turns the pause into the planner's
 * creation limit for the fleet.
 */

export interface BackoffOptions {
  /** First pause after a failure. @default 10_000 */
  baseMs?: number;
  /** Longest pause. @default 600_000 */
  maxMs?: number;
}

/**
 * Per-fleet exponential backoff on readiness failures: after n consecutive failures, no new
 * instance is created for `min(base × 2^(n−1), max)`. A success resets it. Instances created
 * before the current pause began are one batch with the failure that started it: their failures
 * do not lengthen it (six instances of one broken image failing together are one step, not six).
 */
export class ReadinessBackoff {
  private readonly state = new Map<string, { failures: number; since: number; until: number }>();
  private readonly baseMs: number;
  private readonly maxMs: number;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? 10_000;
    this.maxMs = opts.maxMs ?? 600_000;
  }

  /**
   * Records a failure at `nowMs` of an instance created at `createdAtMs`; returns the pause in
   * force, in ms from now.
   */
  failed(fleet: string, nowMs: number, createdAtMs = nowMs): number {
    const s = this.state.get(fleet);
    if (s && createdAtMs < s.since) return Math.max(0, s.until - nowMs);
    const failures = (s?.failures ?? 0) + 1;
    const pause = Math.min(this.maxMs, this.baseMs * 2 ** (failures - 1));
    this.state.set(fleet, { failures, since: nowMs, until: nowMs + pause });
    return pause;
  }

  succeeded(fleet: string): void {
    this.state.delete(fleet);
  }

  /** When creation may resume (epoch ms), or undefined when the fleet is not backing off. */
  blockedUntil(fleet: string, nowMs: number): number | undefined {
    const s = this.state.get(fleet);
    return s && s.until > nowMs ? s.until : undefined;
  }

  failures(fleet: string): number {
    return this.state.get(fleet)?.failures ?? 0;
  }
}
