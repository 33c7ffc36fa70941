/**
 * Serialised read-modify-write of ledger rows. The slot scheduler (use counts, acquired slots) and
 * the daemon (readiness, drains) both write instance rows; funnelling every write through one
 * queue per instance means neither ever writes back a stale copy over the other's change.
 */
import type { LedgerInstance } from '../model/observed.js';
import type { StateStore } from './store.js';

export type LedgerUpdate = (row: LedgerInstance) => LedgerInstance | undefined;

export class LedgerWriter {
  private readonly queues = new Map<string, Promise<void>>();

  constructor(readonly store: StateStore) {}

  /**
   * Reads the current row, applies `fn`, writes the result. Nothing happens when the row does not
   * exist (the instance was removed meanwhile) or `fn` returns undefined. Resolves once written.
   */
  update(fleet: string, id: string, fn: LedgerUpdate): Promise<void> {
    return this.enqueue(fleet, id, async () => {
      const row = await this.store.getInstance(fleet, id);
      if (!row) return;
      const next = fn({ ...row });
      if (next) await this.store.putInstance(next);
    });
  }

  /** Inserts the row unless one exists already (adoption must not reset use counts). */
  insert(row: LedgerInstance): Promise<void> {
    return this.enqueue(row.fleet, row.id, async () => {
      if (!(await this.store.getInstance(row.fleet, row.id))) await this.store.putInstance(row);
    });
  }

  remove(fleet: string, id: string): Promise<void> {
    return this.enqueue(fleet, id, () => this.store.deleteInstance(fleet, id));
  }

  /** Resolves when every write queued so far is done. */
  async flush(): Promise<void> {
    while (this.queues.size > 0) await Promise.all([...this.queues.values()]);
  }

  private enqueue(fleet: string, id: string, work: () => Promise<void>): Promise<void> {
    const key = `${fleet}\u0000${id}`;
    const previous = this.queues.get(key) ?? Promise.resolve();
    // A failed write must not wedge the queue for that instance: the next one still runs.
    const next = previous.then(work, work);
    const settled: Promise<void> = next.then(
      () => this.forget(key, settled),
      () => this.forget(key, settled),
    );
    this.queues.set(key, settled);
    return next;
  }

  private forget(key: string, settled: Promise<void>): void {
    if (this.queues.get(key) === settled) this.queues.delete(key);
  }
}
