/**
 * Every store test runs against both backends: a SQLite file in the test's directory, and a fresh
 * database on a PostgreSQL cluster the test file started itself (`topology/postgres.ts`).
 */
import { join } from 'node:path';
import type { Test } from 'tap';
import { openSqliteStore, type StateStore } from '../../src/store/index.js';
import { openPostgresStore } from '../../src/store/postgres-store.js';
import { manualTime, type Clock } from '../../src/util/time.js';
import { startPostgres, type PgCluster } from './topology/postgres.js';

type StoreTest = Pick<Test, 'testdir' | 'teardown'>;

export interface OpenedStore {
  store: StateStore;
  /** Opens another store on the same data (a second process, or the same one after a restart). */
  again(clock?: Clock): Promise<StateStore>;
}

export interface StoreBackend {
  name: 'sqlite' | 'postgres';
  /** A new, empty store that is closed on teardown. */
  fresh(t: StoreTest, clock?: Clock): Promise<OpenedStore>;
}

export const sqliteBackend: StoreBackend = {
  name: 'sqlite',
  async fresh(t, clock = manualTime('2026-03-01T10:00:00.000Z')) {
    const file = join(t.testdir(), 'state.db');
    const store = await openSqliteStore(file, { clock });
    t.teardown(() => store.close());
    return {
      store,
      again: async (c = clock) => {
        const s = await openSqliteStore(file, { clock: c });
        t.teardown(() => s.close());
        return s;
      },
    };
  },
};

export function postgresBackend(cluster: PgCluster): StoreBackend {
  return {
    name: 'postgres',
    async fresh(t, clock = manualTime('2026-03-01T10:00:00.000Z')) {
      const db = await cluster.createDatabase();
      const open = async (c: Clock) => {
        const s = await openPostgresStore(cluster.pool(db), cluster.url(db), { clock: c });
        t.teardown(() => s.close());
        return s;
      };
      const store = await open(clock);
      return { store, again: (c = clock) => open(c) };
    },
  };
}

/** SQLite, plus PostgreSQL when its binaries are installed (else a loud skip, or a failure on CI). */
export async function storeBackends(t: Pick<Test, 'skip' | 'fail' | 'teardown'>): Promise<{
  backends: StoreBackend[];
  cluster?: PgCluster;
}> {
  const cluster = await startPostgres(t);
  return cluster
    ? { backends: [sqliteBackend, postgresBackend(cluster)], cluster }
    : { backends: [sqliteBackend] };
}
