/**
 * Who should own which fleet, and what a manager does with its leases on each round: pure
 * decisions on what the database said (members, lease rows with their remaining time by the
 * database's clock). The side effects — the SQL, the timers — live at the edges (`store/pg-leases.ts`,
 * the daemon's lease keeper).
 *
 * Fleets are spread by rendezvous (highest-random-weight) hashing over the live members that are
 * not stopping: every member computes the same owner for a fleet, and when one joins or leaves only
 * the fleets whose top choice changes move (about 1/N of them).
 */

/** Lease timings (README "Several managers"): renew every 5 s, valid 15 s, trust 1 s less. */
export const LEASE_RENEW_MS = 5_000;
export const LEASE_TTL_MS = 15_000;
export const LEASE_MARGIN_MS = 1_000;

export interface LeaseRow {
  fleet: string;
  /** null once released. */
  owner: string | null;
  /** Increases on every change of owner; never reused for a fleet. */
  term: number;
  /** expires_at − now(), both by the database's clock, when read; ≤ 0 means expired. */
  remainingMs: number;
}

export interface Member {
  id: string;
  /** Heartbeat younger than the TTL by the database's clock. */
  alive: boolean;
  /** Handing its fleets over (SIGTERM): owns nothing new. */
  stopping: boolean;
}

export type LeaseStep =
  | { action: 'acquire'; fleet: string }
  | { action: 'renew'; fleet: string; term: number }
  | { action: 'release'; fleet: string; term: number };

/** 32-bit FNV-1a, then a murmur3 finaliser so near-identical names spread evenly. */
export function weight(fleet: string, member: string): number {
  let h = 0x811c9dc5;
  const text = `${fleet}\u0000${member}`;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The member that should own `fleet` among `members` (ties by id), undefined when none. */
export function rendezvousOwner(fleet: string, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestWeight = -1;
  for (const m of members) {
    const w = weight(fleet, m);
    if (w > bestWeight || (w === bestWeight && best !== undefined && m < best)) {
      best = m;
      bestWeight = w;
    }
  }
  return best;
}

/** Members that may take fleets: alive and not stopping. */
export function eligible(members: readonly Member[]): string[] {
  return members.filter((m) => m.alive && !m.stopping).map((m) => m.id);
}

/** fleet → the member that should own it. */
export function assignFleets(fleets: readonly string[], members: readonly Member[]): Map<string, string> {
  const ids = eligible(members);
  const out = new Map<string, string>();
  for (const f of fleets) {
    const owner = rendezvousOwner(f, ids);
    if (owner) out.set(f, owner);
  }
  return out;
}

/** A lease nobody holds now: never taken, released, or expired by the database's clock. */
export function isFree(row: LeaseRow | undefined): boolean {
  return !row || row.owner === null || row.remainingMs <= 0;
}

/** Whether `row` is the live lease of `me` under `term` (a stale term is never current). */
export function holdsTerm(row: LeaseRow | undefined, me: string, term: number): boolean {
  return !!row && row.owner === me && row.term === term && row.remainingMs > 0;
}

export interface LeaseRound {
  me: string;
  /** The fleets there are (applied or defined). */
  fleets: readonly string[];
  leases: readonly LeaseRow[];
  members: readonly Member[];
  /** This manager is handing over: it releases everything and acquires nothing. */
  stopping: boolean;
  /**
   * A lease left free this long is taken by any eligible member, not only its rendezvous owner,
   * so a fleet is never stranded by a member that is alive but not acquiring. @default the TTL
   */
  strandedMs?: number;
}

/**
 * This round's steps: renew what is mine and should stay mine, release what should now be another
 * live member's (or everything when stopping), acquire the free leases that should be mine.
 */
export function planLeaseRound(r: LeaseRound): LeaseStep[] {
  const rows = new Map(r.leases.map((l) => [l.fleet, l]));
  const ids = eligible(r.members);
  const strandedMs = r.strandedMs ?? LEASE_TTL_MS;
  const steps: LeaseStep[] = [];
  const known = new Set(r.fleets);
  for (const l of r.leases) {
    // A fleet that is gone (deleted and drained) is not kept leased.
    if (!known.has(l.fleet) && l.owner === r.me && l.remainingMs > 0) {
      steps.push({ action: 'release', fleet: l.fleet, term: l.term });
    }
  }
  for (const fleet of r.fleets) {
    const row = rows.get(fleet);
    const target = rendezvousOwner(fleet, ids);
    if (row && row.owner === r.me && row.remainingMs > 0) {
      const handOver = r.stopping || (target !== undefined && target !== r.me);
      steps.push({ action: handOver ? 'release' : 'renew', fleet, term: row.term });
    } else if (!r.stopping && isFree(row)) {
      const strandedFor = row ? -row.remainingMs : 0;
      if (target === r.me || (ids.includes(r.me) && strandedFor >= strandedMs)) {
        steps.push({ action: 'acquire', fleet });
      }
    }
  }
  return steps;
}

/**
 * Until when (local monotonic ms) a lease renewed or acquired by a round that started at
 * `startedMs` may be trusted: the database granted `remainingMs` at some moment after the start,
 * so start + remaining − margin is never later than the database's expiry (river's trust window).
 */
export function trustedUntil(startedMs: number, remainingMs: number, marginMs = LEASE_MARGIN_MS): number {
  return startedMs + remainingMs - marginMs;
}

/** Whether a call needing `durationMs` may start at `nowMs` under a lease trusted until `untilMs`. */
export function validFor(untilMs: number | undefined, nowMs: number, durationMs: number): boolean {
  return untilMs !== undefined && nowMs + durationMs <= untilMs;
}
