/**
 * Managers and fleet leases in PostgreSQL (migration 3): the SQL edge of `model/leases.ts`. Every
 * time is the database's (`now()`), never a manager's: expiry, heartbeats and the remaining time
 * returned to the caller. A manager's whole round is a handful of statements (heartbeat, renew all
 * held leases in one UPDATE, read members, read leases), independent of job traffic.
 *
 * Terms: acquiring a free lease sets `term = term + 1` (or 1 for a new row) in the same statement
 * that checks it is free, so two managers can never hold one term; renew and release name the
 * term, so a manager that slept through its expiry cannot renew or release the new owner's lease.
 */
import type { Pool } from 'pg';
import type { LeaseRow, Member } from '../model/leases.js';
import { checkOut, type CheckedOut } from './pg-checkout.js';
import { pgError } from './postgres-store.js';

/** The channel releases are announced on (payload: the fleet), so the next owner acts at once. */
export const LEASE_CHANNEL = 'runfleet_leases';

export interface ManagerInfo {
  id: string;
  host: string;
  pid: number;
}

export interface MemberRow extends Member, ManagerInfo {
  started_at: string;
  heartbeat_at: string;
  /** now() − heartbeat_at, by the database's clock. */
  heartbeat_age_ms: number;
}

export interface Granted {
  fleet: string;
  term: number;
  /** expires_at − now() when granted, by the database's clock. */
  remainingMs: number;
}

interface LeaseSqlRow {
  fleet: string;
  owner: string | null;
  term: string;
  remaining_ms: number;
}

export class PostgresLeases {
  /** Statements sent, for the queries-per-second figure of bench/failover. */
  queries = 0;

  constructor(
    private readonly pool: Pool,
    readonly location: string,
  ) {}

  async register(m: ManagerInfo): Promise<void> {
    await this.q(
      'register this manager',
      `INSERT INTO managers (id, host, pid, started_at, heartbeat_at, stopping)
       VALUES ($1, $2, $3, now(), now(), false)
       ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
         started_at = now(), heartbeat_at = now(), stopping = false`,
      [m.id, m.host, m.pid],
    );
  }

  async heartbeat(id: string, stopping = false): Promise<void> {
    await this.q('heartbeat', 'UPDATE managers SET heartbeat_at = now(), stopping = $2 WHERE id = $1', [
      id,
      stopping,
    ]);
  }

  async deregister(id: string): Promise<void> {
    await this.q('deregister this manager', 'DELETE FROM managers WHERE id = $1', [id]);
  }

  /** Every registered manager; `alive` when its heartbeat is younger than `ttlMs`. */
  async members(ttlMs: number): Promise<MemberRow[]> {
    const r = await this.q<{
      id: string;
      host: string;
      pid: number;
      started_at: Date;
      heartbeat_at: Date;
      stopping: boolean;
      age_ms: number;
    }>(
      'read managers',
      `SELECT id, host, pid, started_at, heartbeat_at, stopping,
         (extract(epoch FROM now() - heartbeat_at) * 1000)::float8 AS age_ms
       FROM managers ORDER BY id`,
    );
    return r.map((m) => ({
      id: m.id,
      host: m.host,
      pid: m.pid,
      started_at: m.started_at.toISOString(),
      heartbeat_at: m.heartbeat_at.toISOString(),
      heartbeat_age_ms: m.age_ms,
      alive: m.age_ms < ttlMs,
      stopping: m.stopping,
    }));
  }

  /** Drops managers silent for longer than `olderThanMs` (their leases expired long ago). */
  async forgetSilent(olderThanMs: number): Promise<void> {
    await this.q(
      'forget silent managers',
      'DELETE FROM managers WHERE heartbeat_at < now() - make_interval(secs => $1 / 1000.0)',
      [olderThanMs],
    );
  }

  async leases(): Promise<LeaseRow[]> {
    const rows = await this.q<LeaseSqlRow>(
      'read leases',
      `SELECT fleet, owner, term,
         (extract(epoch FROM expires_at - now()) * 1000)::float8 AS remaining_ms
       FROM leases ORDER BY fleet`,
    );
    return rows.map((r) => ({
      fleet: r.fleet,
      owner: r.owner,
      term: Number(r.term),
      remainingMs: r.remaining_ms,
    }));
  }

  /**
   * Takes `fleet`'s lease if it is free (no row, released, or expired by now()), as a new term.
   * Returns undefined when someone else holds it.
   */
  async acquire(fleet: string, me: string, ttlMs: number): Promise<Granted | undefined> {
    const rows = await this.q<{ term: string; remaining_ms: number }>(
      `acquire the lease of fleet ${fleet}`,
      `INSERT INTO leases AS l (fleet, owner, term, acquired_at, expires_at)
       VALUES ($1, $2, 1, now(), now() + make_interval(secs => $3 / 1000.0))
       ON CONFLICT (fleet) DO UPDATE SET owner = excluded.owner, term = l.term + 1,
         acquired_at = now(), expires_at = excluded.expires_at
       WHERE l.owner IS NULL OR l.expires_at <= now()
       RETURNING term, (extract(epoch FROM expires_at - now()) * 1000)::float8 AS remaining_ms`,
      [fleet, me, ttlMs],
    );
    const row = rows[0];
    return row ? { fleet, term: Number(row.term), remainingMs: row.remaining_ms } : undefined;
  }

  /** Extends every lease of `held` still current under its term; returns those that were. */
  async renew(
    me: string,
    held: readonly { fleet: string; term: number }[],
    ttlMs: number,
  ): Promise<Granted[]> {
    if (held.length === 0) return [];
    const rows = await this.q<{ fleet: string; term: string; remaining_ms: number }>(
      'renew leases',
      `UPDATE leases AS l SET expires_at = now() + make_interval(secs => $4 / 1000.0)
       FROM unnest($2::text[], $3::bigint[]) AS x(fleet, term)
       WHERE l.fleet = x.fleet AND l.term = x.term AND l.owner = $1 AND l.expires_at > now()
       RETURNING l.fleet, l.term, (extract(epoch FROM l.expires_at - now()) * 1000)::float8 AS remaining_ms`,
      [me, held.map((h) => h.fleet), held.map((h) => String(h.term)), ttlMs],
    );
    return rows.map((r) => ({ fleet: r.fleet, term: Number(r.term), remainingMs: r.remaining_ms }));
  }

  /** Gives up `held` (only under their terms) and announces it on {@link LEASE_CHANNEL}. */
  async release(me: string, held: readonly { fleet: string; term: number }[]): Promise<string[]> {
    if (held.length === 0) return [];
    const rows = await this.q<{ fleet: string }>(
      'release leases',
      `WITH released AS (
         UPDATE leases AS l SET owner = NULL, expires_at = now()
         FROM unnest($2::text[], $3::bigint[]) AS x(fleet, term)
         WHERE l.fleet = x.fleet AND l.term = x.term AND l.owner = $1
         RETURNING l.fleet
       )
       SELECT fleet, pg_notify('${LEASE_CHANNEL}', fleet) FROM released`,
      [me, held.map((h) => h.fleet), held.map((h) => String(h.term))],
    );
    return rows.map((r) => r.fleet);
  }

  /**
   * Calls `onRelease(fleet)` for every release announced by any manager, on a connection of its
   * own. Returns the function that stops listening. A broken connection calls `onLost` once and is
   * handed back to the pool as broken (destroyed): kept checked out, every loss of the database
   * would hold one of the pool's few connections for good, and a daemon that lived through as many
   * losses as the pool is large could not run a statement again.
   */
  async listen(
    onRelease: (fleet: string) => void,
    onLost: (e: unknown) => void,
  ): Promise<() => Promise<void>> {
    let out: CheckedOut;
    try {
      out = await checkOut(this.pool, onLost);
    } catch (e) {
      throw pgError(this.pool, this.location, 'listen for lease releases', e);
    }
    out.client.on('notification', (n) => {
      if (n.channel === LEASE_CHANNEL && n.payload) onRelease(n.payload);
    });
    try {
      await out.client.query(`LISTEN ${LEASE_CHANNEL}`);
    } catch (e) {
      // A connection that broke while LISTEN was sent goes back as broken, not to be reused.
      out.release(true);
      throw pgError(this.pool, this.location, 'listen for lease releases', e);
    }
    this.queries++;
    return async () => {
      if (out.lost) return;
      await out.client.query(`UNLISTEN ${LEASE_CHANNEL}`).catch(() => undefined);
      out.release();
    };
  }

  /** created_term of every ledger row of `fleet` (which term created each instance). */
  async createdTerms(fleet: string): Promise<Map<string, number | null>> {
    const rows = await this.q<{ id: string; created_term: string | null }>(
      `read creating terms of fleet ${fleet}`,
      'SELECT id, created_term FROM instances WHERE fleet = $1',
      [fleet],
    );
    return new Map(rows.map((r) => [r.id, r.created_term === null ? null : Number(r.created_term)]));
  }

  private async q<R extends object>(what: string, sql: string, params: unknown[] = []): Promise<R[]> {
    this.queries++;
    try {
      return (await this.pool.query<R & Record<string, unknown>>(sql, params)).rows;
    } catch (e) {
      throw pgError(this.pool, this.location, what, e);
    }
  }
}
