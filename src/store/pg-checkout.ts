/**
 * A pool connection checked out for several statements (a transaction, the migrations), guarded
 * for as long as it is out. pg-pool removes its own 'error' listener from a connection while it is
 * checked out, and pg emits 'error' on a connection that ends unexpectedly even when the statement
 * running on it has already failed with the same cause. With no listener that event is an uncaught
 * exception: a database lost in the middle of a transaction would take the manager down with it.
 */
import type { Pool, PoolClient } from 'pg';

export interface CheckedOut {
  client: PoolClient;
  /** The connection broke while checked out (it is not given back for reuse). */
  readonly lost: boolean;
  /**
   * Hands the connection back: for reuse when it is sound, else (`broken`, or lost) to be closed.
   * A closed one keeps the guard: the ended connection may still report its error.
   */
  release(broken?: boolean): void;
}

export async function checkOut(pool: Pool): Promise<CheckedOut> {
  const client = await pool.connect();
  let lost = false;
  let released = false;
  const onError = (): void => {
    lost = true;
  };
  client.on('error', onError);
  return {
    client,
    get lost() {
      return lost;
    },
    release(broken = false) {
      if (released) return;
      released = true;
      if (broken || lost) {
        client.release(true);
        return;
      }
      client.removeListener('error', onError);
      client.release();
    },
  };
}
