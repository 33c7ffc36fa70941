/**
 * An in-memory stand-in for `store/pg-leases.ts` for unit tests of the lease keeper: the same
 * contracts (`LeaseApi`), with the database's clock being a test clock, so rounds, expiry and
 * takeovers run deterministically without a PostgreSQL and without real sleeps. The SQL itself is
 * tested against a real PostgreSQL in test/store/pg-leases.test.ts.
 */
import { FleetError } from '../../src/errors.js';
import type { LeaseApi } from '../../src/daemon/lease-keeper.js';
import type { LeaseRow } from '../../src/model/leases.js';
import type { Granted, ManagerInfo, MemberRow } from '../../src/store/pg-leases.js';
import type { Clock } from '../../src/util/time.js';

interface Row {
  owner: string | null;
  term: number;
  expiresAt: number;
}

export class FakeLeaseDb {
  readonly rows = new Map<string, Row>();
  readonly managers = new Map<
    string,
    ManagerInfo & { started: number; heartbeat: number; stopping: boolean }
  >();
  private listeners = new Set<(fleet: string) => void>();
  /** While true every call fails as a lost connection would. */
  down = false;
  /** Statements, by name. */
  readonly calls: string[] = [];

  constructor(private readonly clock: Clock) {}

  private now(): number {
    return this.clock.now().getTime();
  }

  /** The keeper's view of this database for manager calls. */
  api(): LeaseApi {
    const call = async <T>(name: string, fn: () => T): Promise<T> => {
      this.calls.push(name);
      await Promise.resolve();
      if (this.down) {
        throw new FleetError('STATE', `cannot ${name} in state store fake: connection refused`, {
          retryable: true,
        });
      }
      return fn();
    };
    return {
      register: (m) =>
        call('register', () => {
          this.managers.set(m.id, { ...m, started: this.now(), heartbeat: this.now(), stopping: false });
        }),
      heartbeat: (id, stopping = false) =>
        call('heartbeat', () => {
          const m = this.managers.get(id);
          if (m) Object.assign(m, { heartbeat: this.now(), stopping });
        }),
      deregister: (id) => call('deregister', () => void this.managers.delete(id)),
      forgetSilent: (olderThanMs) =>
        call('forgetSilent', () => {
          for (const [id, m] of this.managers)
            if (m.heartbeat < this.now() - olderThanMs) this.managers.delete(id);
        }),
      members: (ttlMs) => call('members', () => this.members(ttlMs)),
      leases: () => call('leases', () => this.leases()),
      acquire: (fleet, me, ttlMs) => call('acquire', () => this.acquire(fleet, me, ttlMs)),
      renew: (me, held, ttlMs) =>
        call('renew', () =>
          held.flatMap((h): Granted[] => {
            const r = this.rows.get(h.fleet);
            if (!r || r.owner !== me || r.term !== h.term || r.expiresAt <= this.now()) return [];
            r.expiresAt = this.now() + ttlMs;
            return [{ fleet: h.fleet, term: r.term, remainingMs: ttlMs }];
          }),
        ),
      release: (me, held) =>
        call('release', () => {
          const out: string[] = [];
          for (const h of held) {
            const r = this.rows.get(h.fleet);
            if (!r || r.owner !== me || r.term !== h.term) continue;
            r.owner = null;
            r.expiresAt = this.now();
            out.push(h.fleet);
          }
          for (const fleet of out) for (const l of this.listeners) queueMicrotask(() => l(fleet));
          return out;
        }),
      listen: (onRelease) =>
        call('listen', () => {
          this.listeners.add(onRelease);
          return async () => void this.listeners.delete(onRelease);
        }),
    };
  }

  /** Another manager (or the test) takes `fleet` as the SQL does: only when free, as a new term. */
  acquire(fleet: string, me: string, ttlMs: number): Granted | undefined {
    const r = this.rows.get(fleet);
    if (r && r.owner !== null && r.expiresAt > this.now()) return undefined;
    const term = (r?.term ?? 0) + 1;
    this.rows.set(fleet, { owner: me, term, expiresAt: this.now() + ttlMs });
    return { fleet, term, remainingMs: ttlMs };
  }

  leases(): LeaseRow[] {
    return [...this.rows]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([fleet, r]) => ({ fleet, owner: r.owner, term: r.term, remainingMs: r.expiresAt - this.now() }));
  }

  members(ttlMs: number): MemberRow[] {
    return [...this.managers.values()].map((m) => ({
      id: m.id,
      host: m.host,
      pid: m.pid,
      started_at: new Date(m.started).toISOString(),
      heartbeat_at: new Date(m.heartbeat).toISOString(),
      heartbeat_age_ms: this.now() - m.heartbeat,
      alive: this.now() - m.heartbeat < ttlMs,
      stopping: m.stopping,
    }));
  }

  /** The live owner of `fleet` by this database's clock, and its term. */
  owner(fleet: string): { owner: string; term: number } | undefined {
    const r = this.rows.get(fleet);
    return r && r.owner !== null && r.expiresAt > this.now() ? { owner: r.owner, term: r.term } : undefined;
  }
}
