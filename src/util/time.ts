/**
 * The one time abstraction of runfleet: wall-clock `now()`, one-shot timers (`after`) and an
 * abortable `sleep`. Every part of the manager (daemon, job runtime, GitLab client, providers,
 * apply) takes a `Time` from the composition root and never reads the global clock or calls the
 * global `setTimeout` itself, so one test clock can drive all of them together: `manualTime` runs
 * hours of fleet life deterministically, `scaledTime` runs the GitLab protocol's 3 s / 30 s rhythms
 * in milliseconds without changing any of its numbers.
 */

export interface TimerHandle {
  /** Cancels the timer; cancelling twice, or after it fired, is harmless. */
  cancel(): void;
}

export interface Time {
  /** Wall-clock time now. */
  now(): Date;
  /**
   * Runs `fn` once after `ms` (negative counts as 0). A pending `after` never keeps the process
   * alive on its own (a daemon's next tick must not hold up its exit).
   */
  after(ms: number, fn: () => void): TimerHandle;
  /**
   * Resolves after `ms`; rejects with `signal.reason` as soon as `signal` aborts. A pending sleep
   * does keep the process alive: somebody awaits it (a CLI's retry backoff is work in progress).
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** What only needs to read the time (the store, the planner's callers). */
export type Clock = Pick<Time, 'now'>;

/**
 * Builds a `Time` from a clock and a timer primitive; `sleep` is derived from `sleepAfter` (by
 * default `after` itself).
 */
export function timeOf(now: () => Date, after: Time['after'], sleepAfter: Time['after'] = after): Time {
  return {
    now,
    after,
    sleep(ms, signal) {
      return new Promise<void>((resolve, reject) => {
        if (signal?.aborted) {
          reject(signal.reason as Error);
          return;
        }
        const onAbort = () => {
          handle.cancel();
          reject(signal?.reason as Error);
        };
        const handle = sleepAfter(ms, () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        });
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
  };
}

function realAfter(scale: number, keepAlive: boolean): Time['after'] {
  return (ms, fn) => {
    const t = setTimeout(fn, Math.max(0, ms * scale));
    if (!keepAlive) t.unref();
    return { cancel: () => clearTimeout(t) };
  };
}

/** The real clock and timers. */
export const systemTime: Time = timeOf(() => new Date(), realAfter(1, false), realAfter(1, true));

/**
 * Real timers whose delays are multiplied by `scale` (0.001 turns 3 s into 3 ms), with a clock that
 * runs 1/scale times as fast from the moment it was made, so elapsed-time checks stay consistent.
 * For tests and the demo.
 */
export function scaledTime(scale: number): Time {
  const origin = Date.now();
  return timeOf(
    () => new Date(origin + (Date.now() - origin) / scale),
    realAfter(scale, false),
    realAfter(scale, true),
  );
}

/**
 * A clock tests move by hand. Its timers fire only when the test advances time past them (in time
 * order, `advance` settling after each); `set` moves the clock without firing anything.
 */
export interface ManualTime extends Time {
  /** Moves the clock forward by `ms`, firing due timers in order. */
  advance(ms: number): void;
  /** Sets the clock without firing timers (a jump, e.g. across a DST change). */
  set(d: Date | string): void;
  /** Timers not yet fired or cancelled. */
  pending(): number;
}

export function manualTime(start: Date | string): ManualTime {
  let t = new Date(start).getTime();
  let seq = 0;
  let queue: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = [];
  const after: Time['after'] = (ms, fn) => {
    const entry = { at: t + Math.max(0, ms), seq: seq++, fn, cancelled: false };
    queue.push(entry);
    return { cancel: () => (entry.cancelled = true) };
  };
  const base = timeOf(() => new Date(t), after);
  return {
    ...base,
    advance(ms) {
      const end = t + ms;
      for (;;) {
        queue = queue.filter((e) => !e.cancelled).sort((a, b) => a.at - b.at || a.seq - b.seq);
        const next = queue[0];
        if (!next || next.at > end) break;
        queue.shift();
        t = Math.max(t, next.at);
        next.fn();
      }
      t = end;
    },
    set(d) {
      t = new Date(d).getTime();
    },
    pending: () => queue.filter((e) => !e.cancelled).length,
  };
}
