/**
 * Leases and the fence on a real PostgreSQL: terms grow on every change of owner, expiry is the
 * database's, and a manager whose term is stale (it slept through its expiry, as a SIGSTOPped one
 * does) is refused by the database itself for every ledger and intent write.
 */
import pg from 'pg';
import t, { type Test } from 'tap';
import type { AppliedFleet, LedgerInstance } from '../../src/model/observed.js';
import { PostgresLeases } from '../../src/store/pg-leases.js';
import { openPostgresStore, type PostgresStateStore } from '../../src/store/postgres-store.js';
import { startPostgres, type PgCluster } from '../helpers/topology/postgres.js';

const cluster = await startPostgres(t);

const row = (id: string, fleet = 'ci'): LedgerInstance => ({
  fleet,
  id,
  provider: 'local',
  state: 'creating',
  created_at: '2026-03-01T09:00:00.000Z',
  use_count: 0,
  health_failures: 0,
  acquired: 0,
});

/** Two managers on one fresh database: each its own pool, store and lease API. */
async function twoManagers(t: Pick<Test, 'teardown'>, c: PgCluster) {
  const db = await c.createDatabase();
  const open = async () => {
    const store = await openPostgresStore(c.pool(db), c.url(db));
    t.teardown(() => store.close());
    return { store, leases: new PostgresLeases(store.pool, store.location) };
  };
  return { a: await open(), b: await open() };
}

/** One manager's store and lease API on a fresh database, on a pool of its own (`opts`). */
async function ownPool(t: Pick<Test, 'teardown'>, c: PgCluster, opts: pg.PoolConfig) {
  const db = await c.createDatabase();
  const pool = new pg.Pool({ host: c.host, port: c.port, user: 'postgres', database: db, ...opts });
  pool.on('error', () => undefined);
  const store = await openPostgresStore(pool, c.url(db));
  t.teardown(() => store.close());
  return { db, store, leases: new PostgresLeases(store.pool, store.location) };
}

/** Polls until the database says the lease of `fleet` has expired (no fixed sleeps). */
async function untilExpired(leases: PostgresLeases, fleet: string): Promise<void> {
  for (;;) {
    const l = (await leases.leases()).find((x) => x.fleet === fleet);
    if (!l || l.remainingMs <= 0) return;
    await new Promise((r) => setTimeout(r, Math.min(50, l.remainingMs + 1)));
  }
}

const fleetRow = (name = 'ci'): AppliedFleet => ({
  name,
  spec: { name } as AppliedFleet['spec'],
  hash: 'h',
  applied_at: '2026-03-01T09:00:00.000Z',
});

const fenceOf = (store: PostgresStateStore, me: string, terms: Map<string, number>) =>
  store.setFence(me, (fleet) => terms.get(fleet));

if (cluster) {
  t.test('members register and heartbeat by the database clock', async (t) => {
    const { a } = await twoManagers(t, cluster);
    await a.leases.register({ id: 'm-a', host: 'box-a', pid: 11 });
    await a.leases.register({ id: 'm-b', host: 'box-b', pid: 22 });
    await a.leases.heartbeat('m-b', true);
    const members = await a.leases.members(15_000);
    t.match(members, [
      { id: 'm-a', host: 'box-a', pid: 11, alive: true, stopping: false },
      { id: 'm-b', host: 'box-b', pid: 22, alive: true, stopping: true },
    ]);
    t.same(
      (await a.leases.members(0)).map((m) => m.alive),
      [false, false],
      'older than a zero TTL: not alive',
    );
    await a.leases.deregister('m-b');
    t.same(
      (await a.leases.members(15_000)).map((m) => m.id),
      ['m-a'],
    );
    await a.leases.forgetSilent(3_600_000);
    t.equal((await a.leases.members(15_000)).length, 1, 'a recent heartbeat is kept');
    await a.leases.forgetSilent(0);
    t.same(await a.leases.members(15_000), [], 'older than the limit: forgotten');
  });

  t.test('acquire: one holder per lease, a new term on every change of owner', async (t) => {
    const { a, b } = await twoManagers(t, cluster);
    const first = await a.leases.acquire('ci', 'm-a', 60_000);
    t.match(first, { fleet: 'ci', term: 1 });
    t.ok(first && first.remainingMs > 50_000 && first.remainingMs <= 60_000, 'remaining time by the DB');
    t.equal(await b.leases.acquire('ci', 'm-b', 60_000), undefined, 'held: refused');
    t.same(await b.leases.release('m-b', [{ fleet: 'ci', term: 1 }]), [], 'a non-owner cannot release');
    t.same(await a.leases.release('m-a', [{ fleet: 'ci', term: 1 }]), ['ci']);
    t.match(await b.leases.acquire('ci', 'm-b', 60_000), { term: 2 }, 'released: the next owner gets term 2');
    t.same(await a.leases.renew('m-a', [{ fleet: 'ci', term: 1 }], 60_000), [], 'the old owner cannot renew');
    t.match(await b.leases.renew('m-b', [{ fleet: 'ci', term: 2 }], 60_000), [{ fleet: 'ci', term: 2 }]);
    t.match(await a.leases.leases(), [{ fleet: 'ci', owner: 'm-b', term: 2 }]);
  });

  t.test('expiry is judged by the database; the owner re-acquiring gets a new term', async (t) => {
    const { a } = await twoManagers(t, cluster);
    t.match(await a.leases.acquire('ci', 'm-a', 150), { term: 1 });
    await untilExpired(a.leases, 'ci');
    t.same(await a.leases.renew('m-a', [{ fleet: 'ci', term: 1 }], 60_000), [], 'expired: no renewal');
    t.match(await a.leases.acquire('ci', 'm-a', 60_000), { term: 2 });
  });

  t.test('a release is announced so the next owner can act at once', async (t) => {
    const { a, b } = await twoManagers(t, cluster);
    const heard: string[] = [];
    let resolve: () => void = () => undefined;
    const got = new Promise<void>((r) => (resolve = r));
    const stop = await b.leases.listen(
      (fleet) => {
        heard.push(fleet);
        resolve();
      },
      () => undefined,
    );
    t.teardown(stop);
    await a.leases.acquire('ci', 'm-a', 60_000);
    await a.leases.release('m-a', [{ fleet: 'ci', term: 1 }]);
    await got;
    t.same(heard, ['ci']);
  });

  t.test('a broken listening connection goes back to the pool, so losses do not use it up', async (t) => {
    // One connection in all: one kept after its loss would leave none for any statement.
    const { db, leases } = await ownPool(t, cluster, { max: 1 });
    const admin = cluster.pool(db);
    t.teardown(() => admin.end());
    for (let loss = 1; loss <= 3; loss++) {
      let lost: () => void = () => undefined;
      const gone = new Promise<void>((r) => (lost = r));
      await leases.listen(() => undefined, lost);
      const killed = await admin.query<{ n: string }>(
        "SELECT count(pg_terminate_backend(pid))::text AS n FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
        [db],
      );
      t.equal(killed.rows[0]?.n, '1', `loss ${loss}: the listening backend was terminated`);
      await gone;
      t.match(await leases.leases(), [], `loss ${loss}: the pool runs statements again`);
    }
  });

  t.test('the database refuses every write of a stale term (a paused manager waking up)', async (t) => {
    const { a, b } = await twoManagers(t, cluster);
    const termsA = new Map<string, number>();
    const termsB = new Map<string, number>();
    fenceOf(a.store, 'm-a', termsA);
    fenceOf(b.store, 'm-b', termsB);

    const ga = await a.leases.acquire('ci', 'm-a', 300);
    termsA.set('ci', ga!.term);
    await a.store.putFleet(fleetRow());
    await a.store.putInstance(row('i-1'));
    const intent = await a.store.openIntent('ci', 'increase', { n: 1 });
    t.same(
      await a.leases.createdTerms('ci'),
      new Map([['i-1', 1]]),
      'the instance records its creating term',
    );

    // a "sleeps": its lease runs out and b takes the fleet over as term 2.
    await untilExpired(b.leases, 'ci');
    const gb = await b.leases.acquire('ci', 'm-b', 60_000);
    t.equal(gb?.term, 2);
    termsB.set('ci', 2);

    // a wakes up still believing it holds term 1: the database says no, to every kind of write.
    const fenced = {
      name: 'FleetError',
      code: 'FENCED',
      message: /stale term 1 for fleet ci \(current term 2\)/,
    };
    await t.rejects(a.store.putInstance(row('i-2')), fenced, 'no new ledger row');
    await t.rejects(a.store.putInstance({ ...row('i-1'), state: 'deleting' }), fenced, 'no update');
    await t.rejects(a.store.deleteInstance('ci', 'i-1'), fenced, 'no delete');
    await t.rejects(a.store.openIntent('ci', 'decrease', { ids: ['i-1'] }), fenced, 'no intent');
    await t.rejects(a.store.closeIntent(intent, 'done'), fenced, 'no closing');
    await t.rejects(a.store.putFleet({ ...fleetRow(), hash: 'stale' }), fenced, 'no fleet row');
    await t.rejects(a.store.deleteFleet('ci'), fenced, 'no fleet deletion');
    t.same(
      (await b.store.listFleets()).map((f) => f.hash),
      ['h'],
      'the fleet row is as a wrote it under its term',
    );
    t.same(
      (await b.store.listInstances('ci')).map((i) => [i.id, i.state]),
      [['i-1', 'creating']],
      'nothing of a’s reached the ledger',
    );

    // b adopts what a left: the open intent and the instance, and writes under term 2.
    t.same(
      (await b.store.listOpenIntents()).map((i) => i.id),
      [intent],
    );
    await b.store.closeIntent(intent, 'resolved after takeover');
    await b.store.putFleet({ ...fleetRow(), hash: 'h2' });
    await b.store.putInstance({ ...row('i-1'), state: 'ready' });
    await b.store.putInstance(row('i-3'));
    t.same(
      await b.leases.createdTerms('ci'),
      new Map([
        ['i-1', 1],
        ['i-3', 2],
      ]),
      'an adopted row keeps the term that created it',
    );
  });

  t.test(
    'no lease of mine: refused before the database is asked; unfenced writers are refused too',
    async (t) => {
      const { a, b } = await twoManagers(t, cluster);
      fenceOf(a.store, 'm-a', new Map());
      await t.rejects(a.store.putInstance(row('i-1')), {
        code: 'FENCED',
        message: /holds no lease on fleet ci/,
      });
      await b.leases.acquire('ci', 'm-b', 60_000);
      // A writer without a fence (the CLI, a single manager) must not write a fleet another manager owns.
      a.store.setFence(undefined);
      await t.rejects(a.store.putInstance(row('i-1')), {
        code: 'FENCED',
        message: /fleet ci is leased to manager m-b \(term 1\)/,
      });
      await t.rejects(a.store.putFleet(fleetRow()), { code: 'FENCED', message: /leased to manager m-b/ });
      await a.store.putInstance(row('i-9', 'unleased'));
      t.equal((await a.store.listInstances('unleased')).length, 1, 'a fleet nobody leases stays writable');
    },
  );

  t.test('a fence names one fleet: it cannot cover a write to another', async (t) => {
    const { a } = await twoManagers(t, cluster);
    const g = await a.leases.acquire('ci', 'm-a', 60_000);
    await a.leases.acquire('other', 'm-x', 60_000);
    // A buggy fence answering ci's term for every fleet still cannot write "other".
    a.store.setFence('m-a', () => g!.term);
    await t.rejects(a.store.putInstance(row('i-1', 'other')), { code: 'FENCED' });
  });
}

if (cluster) {
  t.test(
    'a fenced write that outlasts the client-side query timeout fails as STATE and its connection is dropped, not pooled',
    async (t) => {
      // A short query_timeout here; the manager's is PG_QUERY_TIMEOUT_MS (src/cli/root.ts).
      const { db, store, leases } = await ownPool(t, cluster, { max: 4, query_timeout: 500 });
      const g = await leases.acquire('ci', 'm-a', 60_000);
      store.setFence('m-a', () => g!.term);
      await store.putInstance(row('i-1'));
      const before = store.pool.totalCount;
      // Another session holds the lease row, so the fence trigger's FOR SHARE waits (as a statement
      // on a connection that hangs would).
      const blocker = await cluster.pool(db).connect();
      t.teardown(() => blocker.release(true));
      await blocker.query('BEGIN');
      await blocker.query("SELECT * FROM leases WHERE fleet = 'ci' FOR UPDATE");
      await t.rejects(store.putInstance(row('i-2')), { code: 'STATE', retryable: true }, 'fails, retryable');
      t.equal(store.pool.totalCount, before - 1, 'the connection whose statement timed out left the pool');
      await blocker.query('ROLLBACK');
      await store.putInstance(row('i-3'));
      t.same(
        (await store.listInstances()).map((r) => r.id).filter((id) => id !== 'i-2'),
        ['i-1', 'i-3'],
        'the store goes on working',
      );
    },
  );
}

if (cluster) {
  t.test(
    'a transaction whose connection is cut fails as STATE, and the lost connection raises nothing uncaught',
    async (t) => {
      // pg emits 'error' on a connection that ends unexpectedly even after its statement failed, and
      // pg-pool listens only while the connection is idle: unguarded, this killed the manager.
      const { db, store, leases } = await ownPool(t, cluster, { max: 4 });
      const g = await leases.acquire('ci', 'm-a', 60_000);
      store.setFence('m-a', () => g!.term);
      const uncaught: unknown[] = [];
      const record = (e: unknown) => void uncaught.push(e);
      process.on('uncaughtException', record);
      t.teardown(() => void process.off('uncaughtException', record));
      const admin = cluster.pool(db);
      t.teardown(() => admin.end());
      // The fence trigger's FOR SHARE waits behind this lock, so the write is mid-transaction.
      const blocker = await admin.connect();
      t.teardown(() => blocker.release(true));
      await blocker.query('BEGIN');
      await blocker.query("SELECT * FROM leases WHERE fleet = 'ci' FOR UPDATE");
      const write = store.putInstance(row('i-1'));
      const waiting = async () => {
        for (;;) {
          const r = await admin.query<{ pid: number }>(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
            [db],
          );
          if (r.rows[0]) return r.rows[0].pid;
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      await admin.query('SELECT pg_terminate_backend($1)', [await waiting()]);
      await t.rejects(write, { code: 'STATE' }, 'the write fails, as a state store error');
      // The connection's own 'end' comes after the statement's failure: give it time to arrive.
      await new Promise((r) => setTimeout(r, 200));
      t.same(uncaught.map(String), [], 'nothing uncaught');
      await blocker.query('ROLLBACK');
      await store.putInstance(row('i-2'));
      t.same(
        (await store.listInstances()).map((r) => r.id),
        ['i-2'],
        'the store goes on working',
      );
    },
  );
}
