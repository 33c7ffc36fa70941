/**
 * The state store seam. SQLite (`sqlite-store.ts`) is the embedded default; a PostgreSQL backend
 * for several managers will implement the same interface, which is why every method is async.
 *
 * Contracts:
 * - Every write is durable when its promise resolves.
 * - `acquireLock` is atomic across processes: at most one holder per store.
 * - Methods never throw for "not found"; they return undefined / false.
 */
import type { AppliedFleet, LedgerInstance } from '../model/observed.js';

export interface LockInfo {
  id: string;
  /** What the holder is doing: `apply`, `watch`, ... */
  operation: string;
  /** user@host pid N */
  who: string;
  created_at: string;
}

export interface ApplyRecord {
  id?: number;
  started_at: string;
  finished_at: string;
  plan_hash: string;
  /** `success`, `partial`, `failed`, `noop` */
  result: 'success' | 'partial' | 'failed' | 'noop';
  summary: { add: number; change: number; destroy: number };
  /** One line per step, human readable; never secrets. */
  steps: string[];
}

/** A mutating step recorded before the provider call, closed after it (restart safety). */
export interface Intent {
  id: number;
  fleet: string;
  action: string;
  detail: Record<string, unknown>;
  created_at: string;
  closed_at?: string;
  outcome?: string;
}

export interface StateStore {
  /** Where the store lives (a file path or a connection string without password). */
  readonly location: string;

  listFleets(): Promise<AppliedFleet[]>;
  putFleet(fleet: AppliedFleet): Promise<void>;
  deleteFleet(name: string): Promise<void>;

  listInstances(fleet?: string): Promise<LedgerInstance[]>;
  getInstance(fleet: string, id: string): Promise<LedgerInstance | undefined>;
  /** Inserts or replaces the ledger row for (fleet, id). */
  putInstance(instance: LedgerInstance): Promise<void>;
  deleteInstance(fleet: string, id: string): Promise<void>;

  openIntent(fleet: string, action: string, detail: Record<string, unknown>): Promise<number>;
  closeIntent(id: number, outcome: string): Promise<void>;
  listOpenIntents(): Promise<Intent[]>;

  recordApply(record: ApplyRecord): Promise<number>;
  listApplies(limit?: number): Promise<ApplyRecord[]>;

  /** Takes the lock or throws FleetError(LOCKED) naming the holder. */
  acquireLock(operation: string, who: string): Promise<LockInfo>;
  /** Releases a lock this process holds; no-op if `id` no longer holds it. */
  releaseLock(id: string): Promise<void>;
  /** Releases the lock whatever holds it, if its id matches; returns false when no such lock. */
  forceUnlock(id: string): Promise<boolean>;
  currentLock(): Promise<LockInfo | undefined>;

  close(): Promise<void>;
}
