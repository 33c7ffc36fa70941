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
  /** The connection broke while checked out: it has already been handed back, to be closed. */
  readonly lost: boolean;
  /**
   * Hands the connection back: for reuse when it is sound, to be closed when `broken`. After a loss
   * it does nothing (the connection went back when it broke).
   */
  release(broken?: boolean): void;
}

/**
 * Checks a connection out of `pool`. When it breaks while out, it goes back to the pool at once as
 * broken (a connection held for good, as a LISTEN one is, must not keep its slot after a loss) and
 * `onLost` is told, once. The guard stays on it: the ended connection may still report its error.
 */
export async function checkOut(pool: Pool, onLost?: (e: Error) => void): Promise<CheckedOut> {
  const client = await pool.connect();
  let lost = false;
  let released = false;
  const onError = (e: Error): void => {
    if (lost || released) return;
    lost = true;
    released = true;
    client.release(e);
    onLost?.(e);
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
      if (broken) {
        client.release(true);
        return;
      }
      client.removeListener('error', onError);
      client.release();
    },
  };
}
