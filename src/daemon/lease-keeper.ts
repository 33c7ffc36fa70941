/**
 * A manager's side of the fleet leases (several managers on one PostgreSQL store, README "Several
 * managers"): registers, heartbeats and runs one lease round every `renewMs` — renew what it holds,
 * hand over what should now be another live manager's, acquire the free leases that should be its
 * own (`model/leases.ts` decides; the SQL is `store/pg-leases.ts`). A release announced by another
 * manager starts a round at once.
 *
 * A lease is trusted only until its trust window ends (when its renew or acquire statement was sent
 * + remaining time granted by the database − margin, on the monotonic clock), whether or not the database can be reached: a manager that loses its
 * database stops owning, and so stops changing, its fleets within one lease period, and resumes
 * with fresh terms when the database answers again. `termOf` is the store's fence.
 *
 * Rounds never wait on anything unbounded: the next one is scheduled every renew period whether or
 * not the last has ended (one still running folds it in), and the daemon's reaction to a change of
 * ownership (`onChange`, which reads the database and may be slow or stuck) is awaited for at most
 * one renew period, then left to finish on its own — the trust windows and the fence, not the
 * reaction, keep a manager from acting on what it no longer owns. Statements themselves are bounded
 * by the pool's client-side timeout (`PG_QUERY_TIMEOUT_MS`, src/cli/root.ts).
 */
import { performance } from 'node:perf_hooks';
import {
  LEASE_MARGIN_MS,
  LEASE_RENEW_MS,
  LEASE_TTL_MS,
  planLeaseRound,
  trustedUntil,
  validFor,
  type LeaseRow,
  type LeaseStep,
} from '../model/leases.js';
import { FleetError, asError } from '../errors.js';
import type { Granted, ManagerInfo, MemberRow } from '../store/pg-leases.js';
import type { Logger } from '../util/logger.js';
import type { Time, TimerHandle } from '../util/time.js';

/** What the keeper needs of the database (`PostgresLeases`). */
export interface LeaseApi {
  register(m: ManagerInfo): Promise<void>;
  heartbeat(id: string, stopping?: boolean): Promise<void>;
  deregister(id: string): Promise<void>;
  forgetSilent(olderThanMs: number): Promise<void>;
  members(ttlMs: number): Promise<MemberRow[]>;
  leases(): Promise<LeaseRow[]>;
  acquire(fleet: string, me: string, ttlMs: number): Promise<Granted | undefined>;
  renew(me: string, held: readonly { fleet: string; term: number }[], ttlMs: number): Promise<Granted[]>;
  release(me: string, held: readonly { fleet: string; term: number }[]): Promise<string[]>;
  listen(onRelease: (fleet: string) => void, onLost: (e: unknown) => void): Promise<() => Promise<void>>;
}

export interface LeaseEvents {
  held(count: number): void;
  acquired(fleet: string): void;
  lost(fleet: string): void;
}

export interface LeaseKeeperOptions {
  api: LeaseApi;
  me: ManagerInfo;
  time: Time;
  logger: Logger;
  /** Every fleet there is (defined in files or applied): what leases exist for. */
  fleets: () => Promise<string[]>;
  /**
   * Told after every change of what this manager owns (gained and lost fleets). Calls run one at a
   * time, in order; a round waits for its call at most one renew period.
   */
  onChange: (gained: string[], lost: string[]) => Promise<void>;
  /**
   * Told at once (synchronously, before `onChange`) of fleets this manager stopped owning: what must
   * stop without waiting for the daemon (asking GitLab for their jobs).
   */
  onLost?: (lost: string[]) => void;
  events?: LeaseEvents;
  renewMs?: number;
  ttlMs?: number;
  marginMs?: number;
  /**
   * A provider call starts only under a lease trusted for at least this long. @default renewMs
   * (after a renewal a lease is trusted for ttl − margin, so rounds keep well above it).
   */
  callBudgetMs?: number;
  /** Monotonic milliseconds. @default performance.now */
  monotonic?: () => number;
}

interface Held {
  term: number;
  /** Local monotonic ms the lease is trusted until. */
  until: number;
}

/** One provider mutation under a fleet's lease (`LeaseKeeper.callWindow`). */
export interface CallWindow {
  /** The term the call is made under. */
  term: number;
  /**
   * Aborts when the call's budget is spent (before the lease could expire by the database's clock)
   * and at once when the lease is lost or handed over; its reason is a FleetError(FENCED).
   */
  signal: AbortSignal;
  /** The call ended (settled): the window closes. */
  done(): void;
}

interface OpenWindow {
  abort: AbortController;
  /** Monotonic ms the call's budget ends. */
  deadline: number;
  settled: Promise<void>;
  settle: () => void;
}

export class LeaseKeeper {
  private readonly held = new Map<string, Held>();
  private readonly renewMs: number;
  private readonly ttlMs: number;
  private readonly marginMs: number;
  private readonly budgetMs: number;
  private readonly now: () => number;
  private stopping = false;
  private stopped = false;
  private running: Promise<void> | undefined;
  private again = false;
  private tick: TimerHandle | undefined;
  private expiry: TimerHandle | undefined;
  private unlisten: (() => Promise<void>) | undefined;
  /** The daemon's reactions (`onChange`), chained so they run one at a time and in order. */
  private reactions: Promise<void> = Promise.resolve();
  /** Provider calls under way, by fleet. */
  private readonly windows = new Map<string, Set<OpenWindow>>();
  /** Last members as read by a round (for `runfleet managers` and status). */
  lastMembers: MemberRow[] = [];

  constructor(private readonly opts: LeaseKeeperOptions) {
    this.renewMs = opts.renewMs ?? LEASE_RENEW_MS;
    this.ttlMs = opts.ttlMs ?? LEASE_TTL_MS;
    this.marginMs = opts.marginMs ?? LEASE_MARGIN_MS;
    this.budgetMs = opts.callBudgetMs ?? this.renewMs;
    this.now = opts.monotonic ?? (() => performance.now());
  }

  get id(): string {
    return this.opts.me.id;
  }

  /** Whether this manager owns `fleet` now (its lease is within its trust window). */
  owns(fleet: string): boolean {
    const h = this.held.get(fleet);
    return !!h && this.now() < h.until;
  }

  /**
   * The fence: this manager's term for `fleet` when its lease is trusted now, and — for an intent,
   * which precedes a provider call — still trusted for the call budget. Otherwise undefined.
   */
  termOf(fleet: string, purpose: 'write' | 'intent' = 'write'): number | undefined {
    const h = this.held.get(fleet);
    if (!h) return undefined;
    return validFor(h.until, this.now(), purpose === 'intent' ? this.budgetMs : 0) ? h.term : undefined;
  }

  /**
   * Opens the window of one provider mutation on `fleet` (what the call does: `what`). The call may
   * start only under a lease trusted for its whole budget (`callBudgetMs`) from now, else
   * FleetError(FENCED) is thrown; the window's signal ends the call at that budget, so before the
   * lease could run out, and at once if the lease is lost or handed over meanwhile.
   */
  callWindow(fleet: string, what: string): CallWindow {
    const h = this.held.get(fleet);
    const now = this.now();
    if (!h || !validFor(h.until, now, this.budgetMs)) {
      const left = h ? Math.max(0, Math.round(h.until - now)) : 0;
      throw new FleetError(
        'FENCED',
        `cannot ${what}: the lease of fleet ${fleet} is ${h ? `trusted for only ${left} ms more` : 'not this manager’s'}, and a provider call needs ${this.budgetMs} ms`,
        {
          hint: h
            ? 'the lease is renewed every renew period; the next pass tries again'
            : 'another manager owns the fleet now (runfleet managers)',
          retryable: true,
        },
      );
    }
    const abort = new AbortController();
    let settle = () => undefined as void;
    const settled = new Promise<void>((r) => (settle = r));
    const open: OpenWindow = { abort, deadline: now + this.budgetMs, settled, settle };
    const timer = this.opts.time.after(this.budgetMs, () =>
      abort.abort(
        new FleetError(
          'FENCED',
          `${what} stopped: it took longer than the ${this.budgetMs} ms its lease on fleet ${fleet} covers`,
          { hint: 'the call is retried by a later pass under a renewed lease', retryable: true },
        ),
      ),
    );
    let set = this.windows.get(fleet);
    if (!set) this.windows.set(fleet, (set = new Set()));
    set.add(open);
    return {
      term: h.term,
      signal: abort.signal,
      done: () => {
        timer.cancel();
        set.delete(open);
        if (set.size === 0 && this.windows.get(fleet) === set) this.windows.delete(fleet);
        settle();
      },
    };
  }

  /** Fleets owned now, with their terms. */
  owned(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [fleet, h] of this.held) if (this.now() < h.until) out.set(fleet, h.term);
    return out;
  }

  /** Registers, listens for releases and runs the first round. */
  async start(): Promise<void> {
    await this.opts.api.register(this.opts.me);
    // Managers that crashed long ago (their leases expired a hundred TTLs back) leave the list.
    await this.opts.api.forgetSilent(this.ttlMs * 100);
    await this.startListening();
    await this.round();
    this.schedule();
  }

  /** Runs a round now (or right after the one running). */
  round(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.oneRound();
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /**
   * Hand-over (SIGTERM): marks this manager stopping so no fleet is assigned to it, then releases
   * every lease (after the caller has let its jobs finish) and leaves. Others are notified.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.tick?.cancel();
    this.expiry?.cancel();
    await this.running;
    this.stopped = true;
    const held = [...this.held].map(([fleet, h]) => ({ fleet, term: h.term }));
    const lost: string[] = [];
    for (const fleet of [...this.held.keys()]) this.drop(fleet, lost, 'handed over');
    if (lost.length > 0) this.opts.onLost?.(lost);
    await this.react([], lost);
    await this.callsEnded(lost);
    try {
      await this.opts.api.release(this.id, held);
      await this.opts.api.deregister(this.id);
    } catch (e) {
      this.opts.logger.warn('cannot release leases; they expire on their own', { error: asError(e).message });
    }
    await this.unlisten?.().catch(() => undefined);
    this.opts.events?.held(0);
  }

  /** Marks this manager stopping (no new fleets come to it) without releasing yet. */
  async beginHandOver(): Promise<void> {
    this.stopping = true;
    await this.opts.api.heartbeat(this.id, true).catch(() => undefined);
  }

  private async startListening(): Promise<void> {
    try {
      this.unlisten = await this.opts.api.listen(
        () => void this.round(),
        () => {
          // The listening connection broke; rounds go on and listening is retried by the next one.
          this.unlisten = undefined;
        },
      );
    } catch (e) {
      this.opts.logger.warn('cannot listen for lease releases; rounds still run every renew period', {
        error: asError(e).message,
      });
    }
  }

  /**
   * A round every renew period, on a rhythm of its own: the next tick is set before this one's round
   * runs, so a slow round (a statement waiting on a broken connection) cannot stop the renewals; a
   * tick while a round runs makes it run once more (`round`).
   */
  private schedule(): void {
    if (this.stopped) return;
    this.tick = this.opts.time.after(this.renewMs, () => {
      this.schedule();
      void this.round();
    });
  }

  private async oneRound(): Promise<void> {
    const { api } = this.opts;
    const gained: string[] = [];
    const lost: string[] = [];
    try {
      if (!this.unlisten && !this.stopping) await this.startListening();
      await api.heartbeat(this.id, this.stopping);
      const [members, leases, fleets] = await Promise.all([
        api.members(this.ttlMs),
        api.leases(),
        this.opts.fleets(),
      ]);
      this.lastMembers = members;
      const steps = planLeaseRound({ me: this.id, fleets, leases, members, stopping: this.stopping });
      // Held leases the database no longer shows as ours (taken after we slept): lost at once.
      const mine = new Map(
        leases.filter((l) => l.owner === this.id && l.remainingMs > 0).map((l) => [l.fleet, l]),
      );
      for (const [fleet, h] of this.held) {
        if (mine.get(fleet)?.term !== h.term) this.drop(fleet, lost, 'taken over');
      }
      await this.renew(steps, lost, gained);
      await this.release(steps, lost);
      await this.acquire(steps, gained);
    } catch (e) {
      this.opts.logger.warn('lease round failed; owned fleets stay trusted only until their leases run out', {
        event: 'lease',
        error: asError(e).message,
      });
    }
    this.dropExpired(lost);
    await this.changed(gained, lost);
  }

  private async renew(steps: LeaseStep[], lost: string[], gained: string[]): Promise<void> {
    const todo = steps.flatMap((s) => (s.action === 'renew' ? [{ fleet: s.fleet, term: s.term }] : []));
    // Trusted from when the statement was sent: the database granted the time at some later moment.
    const sent = this.now();
    const granted = new Map((await this.opts.api.renew(this.id, todo, this.ttlMs)).map((g) => [g.fleet, g]));
    for (const s of todo) {
      const g = granted.get(s.fleet);
      if (g) {
        // A lease this manager stopped trusting (its window ran out a moment before the
        // database's) is owned again under the same term: the daemon takes it over again.
        if (this.held.get(s.fleet)?.term !== g.term) gained.push(s.fleet);
        this.held.set(s.fleet, { term: g.term, until: trustedUntil(sent, g.remainingMs, this.marginMs) });
      } else if (this.held.has(s.fleet)) {
        this.drop(s.fleet, lost, 'not renewed');
      }
    }
  }

  private async release(steps: LeaseStep[], lost: string[]): Promise<void> {
    const todo = steps.flatMap((s) => (s.action === 'release' ? [{ fleet: s.fleet, term: s.term }] : []));
    if (todo.length === 0) return;
    // Stop acting on them first: the daemon drops them and their provider calls end before the
    // database hands them on.
    for (const s of todo) if (this.held.has(s.fleet)) this.drop(s.fleet, lost, 'handed over');
    const dropped = lost.splice(0);
    await this.changed([], dropped);
    await this.callsEnded(dropped);
    await this.opts.api.release(this.id, todo);
  }

  private async acquire(steps: LeaseStep[], gained: string[]): Promise<void> {
    for (const s of steps) {
      if (s.action !== 'acquire') continue;
      // Each acquisition is trusted from its own statement, not the round's start: a round taking
      // many fleets at once (a manager starting alone) must not see its first leases run out.
      const sent = this.now();
      const g = await this.opts.api.acquire(s.fleet, this.id, this.ttlMs);
      if (!g) continue;
      this.held.set(s.fleet, { term: g.term, until: trustedUntil(sent, g.remainingMs, this.marginMs) });
      gained.push(s.fleet);
      this.opts.events?.acquired(s.fleet);
      this.opts.logger.info('fleet lease acquired', { event: 'lease', fleet: s.fleet, term: g.term });
    }
  }

  private dropExpired(lost: string[]): void {
    const now = this.now();
    for (const [fleet, h] of this.held) if (now >= h.until) this.drop(fleet, lost, 'expired');
    this.expiry?.cancel();
    const next = Math.min(...[...this.held.values()].map((h) => h.until));
    if (Number.isFinite(next) && !this.stopped) {
      this.expiry = this.opts.time.after(Math.max(1, next - now), () => {
        const dropped: string[] = [];
        this.dropExpired(dropped);
        void this.changed([], dropped);
      });
    }
  }

  /** Stops owning `fleet`: its provider calls under way are aborted at once. */
  private drop(fleet: string, lost: string[], why: string): void {
    this.held.delete(fleet);
    lost.push(fleet);
    for (const w of this.windows.get(fleet) ?? []) {
      w.abort.abort(
        new FleetError('FENCED', `provider call stopped: the lease of fleet ${fleet} was ${why}`, {
          hint: 'the fleet’s new owner carries on (runfleet managers)',
          retryable: true,
        }),
      );
    }
  }

  /**
   * Resolves once the provider calls under way on `fleets` have ended, or their budgets are spent
   * (a provider that ignores its signal cannot hold up a hand-over past the lease).
   */
  private async callsEnded(fleets: readonly string[]): Promise<void> {
    const open = fleets.flatMap((f) => [...(this.windows.get(f) ?? [])]);
    if (open.length === 0) return;
    const wait = Math.max(...open.map((w) => w.deadline)) - this.now();
    await this.settlesWithin(Promise.all(open.map((w) => w.settled)), wait);
  }

  private async changed(gained: string[], lost: string[]): Promise<void> {
    if (gained.length === 0 && lost.length === 0) return;
    for (const fleet of lost) {
      this.opts.events?.lost(fleet);
      this.opts.logger.warn('fleet lease given up or lost; no longer acting on it', {
        event: 'lease',
        fleet,
      });
    }
    this.opts.events?.held(this.held.size);
    if (lost.length > 0) this.opts.onLost?.(lost);
    await this.react(gained, lost);
  }

  /**
   * Hands the change to the daemon (after the ones before it) and waits for it at most one renew
   * period: a reaction that hangs (the database unreachable mid-takeover) must not hold up the
   * rounds that renew and re-acquire the leases. It goes on in the background and is logged when it
   * fails.
   */
  private async react(gained: string[], lost: string[]): Promise<void> {
    if (gained.length === 0 && lost.length === 0) return;
    const reaction = this.reactions
      .then(() => this.opts.onChange(gained, lost))
      .catch((e: unknown) => {
        this.opts.logger.error('cannot apply a change of fleet ownership', { error: asError(e).message });
      });
    this.reactions = reaction;
    if (!(await this.settlesWithin(reaction, this.renewMs))) {
      this.opts.logger.warn(
        'the daemon is still taking in a change of fleet ownership after a renew period; lease rounds go on',
        { event: 'lease', gained, lost },
      );
    }
  }

  /** Whether `p` settles within `ms` (on the keeper's time). */
  private async settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
    const cancel = new AbortController();
    try {
      return await Promise.race([
        p.then(
          () => true,
          () => true,
        ),
        this.opts.time.sleep(Math.max(0, ms), cancel.signal).then(
          () => false,
          () => false,
        ),
      ]);
    } finally {
      cancel.abort();
    }
  }
}
