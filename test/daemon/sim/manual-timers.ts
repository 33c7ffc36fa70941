/**
 * Deterministic time for simulations: one manual clock whose timers fire only when the test
 * advances it, settling the daemon's work after each; `scope()` gives a daemon a `Time` whose timers
 * can all be dropped at once (a crashed daemon's).
 */
import type { TimerHandle, Time } from '../../../src/util/time.js';
import { manualTime, timeOf } from '../../../src/util/time.js';

interface Entry {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
  scope: number;
}

export class ManualTimers {
  /** The clock alone (no timers fire on it): for the store and the simulated provider. */
  readonly clock = manualTime('1970-01-01T00:00:00Z');
  private queue: Entry[] = [];
  private seq = 0;
  private scopes = 0;
  private disposed = new Set<number>();

  constructor(start: string) {
    this.clock.set(start);
  }

  /** A Time on this clock whose timers can all be dropped at once. */
  scope(): Time & { dispose(): void } {
    const id = ++this.scopes;
    return {
      ...timeOf(
        () => this.clock.now(),
        (ms, fn) => this.add(ms, fn, id),
      ),
      dispose: () => this.disposed.add(id),
    };
  }

  after(ms: number, fn: () => void): TimerHandle {
    return this.add(ms, fn, 0);
  }

  /** Runs due timers in time order, settling after each, then sets the clock to now + ms. */
  async advance(ms: number, settle: () => Promise<void>): Promise<void> {
    // Work started before the call (a pass reacting to demand) runs at the current time first.
    await settle();
    const end = this.clock.now().getTime() + ms;
    for (;;) {
      this.queue = this.queue.filter((e) => !e.cancelled && !this.disposed.has(e.scope));
      this.queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.queue[0];
      if (!next || next.at > end) break;
      this.queue.shift();
      if (next.at > this.clock.now().getTime()) this.clock.set(new Date(next.at));
      next.fn();
      await settle();
    }
    this.clock.set(new Date(end));
    await settle();
  }

  private add(ms: number, fn: () => void, scope: number): TimerHandle {
    const entry: Entry = {
      at: this.clock.now().getTime() + Math.max(0, ms),
      seq: this.seq++,
      fn,
      cancelled: false,
      scope,
    };
    this.queue.push(entry);
    return { cancel: () => (entry.cancelled = true) };
  }
}
