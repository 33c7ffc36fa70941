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
 * instance is created for `min(base × 2^(n−1), max)`. A success resets it.
 */
export class ReadinessBackoff {
  private readonly state = new Map<string, { failures: number; until: number }>();
  private readonly baseMs: number;
  private readonly maxMs: number;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? 10_000;
    this.maxMs = opts.maxMs ?? 600_000;
  }

  /** Records a failure at `nowMs`; returns the pause it starts, in ms. */
  failed(fleet: string, nowMs: number): number {
    const failures = (this.state.get(fleet)?.failures ?? 0) + 1;
    const pause = Math.min(this.maxMs, this.baseMs * 2 ** (failures - 1));
    this.state.set(fleet, { failures, until: nowMs + pause });
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
