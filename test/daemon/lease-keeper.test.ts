/**
 * The lease keeper on a test clock (src/util/time.ts) against an in-memory lease database
 * (test/helpers/fake-leases.ts): renewal, loss when the database is gone, re-acquisition under a
 * higher term, hand-over and release on stop, and provider calls bounded by the lease
 * (`callWindow`, `lease-bound-providers.ts`). No real sleeps: every wait is the test clock moved
 * by hand. Each keeper has its own timer clock, so a SIGSTOPped manager (its timers frozen while
 * the database's clock and the monotonic clock run on) is a clock the test does not move.
 */
import t from 'tap';
import { isFleetError } from '../../src/errors.js';
import { LeaseKeeper } from '../../src/daemon/lease-keeper.js';
import { leaseBound } from '../../src/daemon/lease-bound-providers.js';
import type { Provider } from '../../src/providers/provider.js';
import { silentLogger } from '../../src/util/logger.js';
import { manualTime, type ManualTime } from '../../src/util/time.js';
import { FakeLeaseDb } from '../helpers/fake-leases.js';

const START = '2026-03-01T10:00:00.000Z';
const RENEW = 5_000;
const TTL = 15_000;
const MARGIN = 1_000;

/** Lets every promise the fake database resolved run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

interface World {
  /** The database's clock, which is also every manager's monotonic clock. */
  wall: ManualTime;
  db: FakeLeaseDb;
  /** Moves the wall clock and every running manager's timers by `ms`, in steps. */
  run(ms: number, step?: number): Promise<void>;
  managers: Manager[];
}

interface Manager {
  keeper: LeaseKeeper;
  /** This manager's timers; frozen while paused. */
  timers: ManualTime;
  paused: boolean;
  changes: { gained: string[]; lost: string[] }[];
}

function world(): World {
  const wall = manualTime(START);
  const w: World = {
    wall,
    db: new FakeLeaseDb(wall),
    managers: [],
    async run(ms, step = 100) {
      for (let done = 0; done < ms; done += step) {
        wall.advance(step);
        for (const m of w.managers) if (!m.paused) m.timers.advance(step);
        await settle();
      }
    },
  };
  return w;
}

interface ManagerOpts {
  /** The daemon's reaction to a change; by default it records the change and ends at once. */
  onChange?: (gained: string[], lost: string[]) => Promise<void>;
  onLost?: (lost: string[]) => void;
}

async function manager(
  w: World,
  id: string,
  fleets: string[],
  start = true,
  o: ManagerOpts = {},
): Promise<Manager> {
  const timers = manualTime(START);
  timers.set(w.wall.now());
  const m: Manager = { timers, paused: false, changes: [], keeper: undefined as unknown as LeaseKeeper };
  m.keeper = new LeaseKeeper({
    api: w.db.api(),
    me: { id, host: 'h', pid: 1 },
    time: timers,
    logger: silentLogger,
    fleets: async () => fleets,
    onChange: async (gained, lost) => {
      m.changes.push({ gained, lost });
      await o.onChange?.(gained, lost);
    },
    ...(o.onLost ? { onLost: o.onLost } : {}),
    renewMs: RENEW,
    ttlMs: TTL,
    marginMs: MARGIN,
    monotonic: () => w.wall.now().getTime(),
  });
  w.managers.push(m);
  if (start) {
    await m.keeper.start();
    await settle();
  }
  return m;
}

/** Resumes a paused manager: its overdue timers fire at once, as after SIGCONT. */
async function resume(w: World, m: Manager): Promise<void> {
  m.paused = false;
  m.timers.advance(w.wall.now().getTime() - m.timers.now().getTime());
  await settle();
}

const gainedAll = (m: Manager) => m.changes.flatMap((c) => c.gained).sort();
const lostAll = (m: Manager) => m.changes.flatMap((c) => c.lost).sort();

t.test('renews its leases every renew period, under the same term, while the database answers', async (t) => {
  const w = world();
  const a = await manager(w, 'm-a', ['f1', 'f2', 'f3']);
  t.same(
    [...a.keeper.owned()],
    [
      ['f1', 1],
      ['f2', 1],
      ['f3', 1],
    ],
    'alone, it owns every fleet under term 1',
  );
  t.same(gainedAll(a), ['f1', 'f2', 'f3']);
  const renewsBefore = w.db.calls.filter((c) => c === 'renew').length;
  await w.run(60_000);
  t.same(
    [...a.keeper.owned()],
    [
      ['f1', 1],
      ['f2', 1],
      ['f3', 1],
    ],
    'a minute later: same leases, same terms',
  );
  t.same(lostAll(a), [], 'nothing lost');
  t.equal(
    w.db.calls.filter((c) => c === 'renew').length - renewsBefore,
    60_000 / RENEW,
    'one renewal per period',
  );
  t.equal(w.db.owner('f1')?.owner, 'm-a', 'the database still shows it as the owner');
  t.equal(a.keeper.termOf('f1', 'intent'), 1, 'an intent may be written');
  await a.keeper.stop();
});

t.test(
  'the database gone: it stops owning before the database lets the leases go, then re-acquires with a higher term',
  async (t) => {
    const w = world();
    const a = await manager(w, 'm-a', ['f1', 'f2']);
    await w.run(2_000);
    w.db.down = true;
    const expiresAt = w.db.rows.get('f1')!.expiresAt;
    let lostAt: number | undefined;
    let dbOwnerAtLoss: string | undefined;
    for (let i = 0; i < 400 && lostAt === undefined; i++) {
      await w.run(100);
      if (!a.keeper.owns('f1')) {
        lostAt = w.wall.now().getTime();
        dbOwnerAtLoss = w.db.owner('f1')?.owner;
      }
    }
    t.ok(lostAt !== undefined, 'ownership ends while the database is unreachable');
    t.ok(lostAt! <= expiresAt - MARGIN, 'no later than the database’s expiry minus the margin');
    t.equal(
      dbOwnerAtLoss,
      'm-a',
      'the lease was still its own in the database then: nobody else could act yet',
    );
    t.same(lostAll(a), ['f1', 'f2'], 'the daemon is told');
    t.equal(a.keeper.termOf('f1'), undefined, 'no term for writes');
    t.throws(
      () => a.keeper.callWindow('f1', 'request 1 instance(s)'),
      { code: 'FENCED' },
      'no provider call',
    );

    w.db.down = false;
    await w.run(RENEW + 100);
    t.same(
      [...a.keeper.owned()],
      [
        ['f1', 2],
        ['f2', 2],
      ],
      'owned again under term 2',
    );
    t.same(a.changes.at(-1)?.gained.sort(), ['f1', 'f2'], 'the daemon takes them over again');
    await a.keeper.stop();
  },
);

t.test(
  'a daemon reaction that hangs or is slow does not stop the rounds: the leases come back once the database answers',
  async (t) => {
    for (const reaction of ['never ends', 'takes three lease TTLs'] as const) {
      await t.test(`a reaction that ${reaction}`, async (t) => {
        const w = world();
        let stuck = false;
        const toldAtOnce: string[] = [];
        let reactionsEnded = 0;
        const a: Manager = await manager(w, 'm-a', ['f1', 'f2'], true, {
          // The daemon's reaction reads the database (Daemon.ownershipChanged): once it is gone, the
          // reaction may wait on a statement that never returns.
          onChange: async () => {
            if (!stuck) return;
            if (reaction === 'never ends') await new Promise<never>(() => undefined);
            await a.timers.sleep(3 * TTL);
            reactionsEnded++;
          },
          onLost: (lost) => toldAtOnce.push(...lost),
        });
        await w.run(2_000);
        w.db.down = true;
        stuck = true;
        for (let i = 0; i < 400 && a.keeper.owns('f1'); i++) await w.run(100);
        t.notOk(a.keeper.owns('f1'), 'ownership ends while the database is unreachable');
        t.same(toldAtOnce.sort(), ['f1', 'f2'], 'the loss is told at once, whatever the reaction does');
        // Well past the database's expiry of the leases, failing rounds all along.
        await w.run(TTL + 2 * RENEW);
        t.equal(w.db.owner('f1'), undefined, 'the database let the leases go');
        const rounds = w.db.calls.filter((c) => c === 'heartbeat').length;
        await w.run(4 * RENEW);
        t.ok(
          w.db.calls.filter((c) => c === 'heartbeat').length >= rounds + 4,
          'rounds keep running while the reaction has not ended',
        );

        w.db.down = false;
        await w.run(2 * RENEW);
        t.same(
          [...a.keeper.owned()],
          [
            ['f1', 2],
            ['f2', 2],
          ],
          're-acquired under term 2 once the database answers',
        );
        t.same(w.db.owner('f1'), { owner: 'm-a', term: 2 }, 'the database agrees');
        // The reaction to that gain hangs too (or is slow): the leases are renewed all the same.
        await w.run(3 * TTL);
        t.same(w.db.owner('f1'), { owner: 'm-a', term: 2 }, 'still renewed three TTLs later, same term');
        t.equal(a.keeper.termOf('f2'), 2, 'and still trusted');
        if (reaction === 'takes three lease TTLs') {
          await w.run(4 * TTL);
          t.ok(reactionsEnded >= 1, 'the slow reaction ended meanwhile');
          t.same(
            a.changes.at(-1)?.gained.sort(),
            ['f1', 'f2'],
            'and then the daemon was told of the gain, in order',
          );
        }
        stuck = false;
        if (reaction === 'takes three lease TTLs') await a.keeper.stop();
      });
    }
  },
);

t.test(
  'terms increase on every change of owner; a joining manager gets its share, a stopping one releases all',
  async (t) => {
    const w = world();
    const fleets = Array.from({ length: 12 }, (_v, i) => `f${i}`);
    const a = await manager(w, 'm-a', fleets);
    t.equal(a.keeper.owned().size, 12);
    const b = await manager(w, 'm-b', fleets);
    await w.run(3 * RENEW);
    const owners = fleets.map((f) => w.db.owner(f));
    t.ok(
      owners.every((o) => o !== undefined),
      'every fleet owned',
    );
    const ofB = fleets.filter((f) => w.db.owner(f)?.owner === 'm-b');
    t.ok(ofB.length > 0 && ofB.length < 12, `the newcomer owns ${ofB.length} of 12`);
    for (const f of fleets) {
      const o = w.db.owner(f)!;
      t.equal(o.term, o.owner === 'm-b' ? 2 : 1, `${f}: term ${o.owner === 'm-b' ? 2 : 1} under ${o.owner}`);
      t.equal(a.keeper.owns(f), o.owner === 'm-a', `${f}: m-a owns it only if the database says so`);
      t.equal(b.keeper.owns(f), o.owner === 'm-b', `${f}: m-b owns it only if the database says so`);
    }
    t.same(lostAll(a), [...ofB].sort(), 'm-a handed over exactly those');

    // Release on stop: every lease freed, the member gone, the other told at once (NOTIFY).
    await b.keeper.stop();
    t.same(lostAll(b), [...ofB].sort(), 'm-b dropped its fleets first');
    t.notOk(w.db.managers.has('m-b'), 'deregistered');
    await settle();
    for (const f of ofB)
      t.same(w.db.owner(f), { owner: 'm-a', term: 3 }, `${f}: m-a took it back at once, term 3`);
    await a.keeper.stop();
    t.ok(
      fleets.every((f) => w.db.owner(f) === undefined),
      'after both stopped no lease is held',
    );
  },
);

t.test('a paused manager wakes up to find its leases taken: lost at once, never acted on', async (t) => {
  const w = world();
  const a = await manager(w, 'm-a', ['f1']);
  const b = await manager(w, 'm-b', ['f1']);
  await w.run(RENEW);
  const first = w.db.owner('f1')!;
  const [owner, other] = first.owner === 'm-a' ? [a, b] : [b, a];
  owner.paused = true; // SIGSTOP: no timer of it runs, the clocks go on
  await w.run(TTL + 2 * RENEW);
  t.same(w.db.owner('f1')?.term, first.term + 1, 'the other manager took the fleet under a new term');
  t.ok(other.keeper.owns('f1'));
  t.notOk(owner.keeper.owns('f1'), 'the sleeper does not own it, even before its first round');
  t.throws(() => owner.keeper.callWindow('f1', 'remove 1 instance(s)'), { code: 'FENCED' });
  t.equal(owner.keeper.termOf('f1', 'write'), undefined, 'and cannot write');
  await resume(w, owner);
  await w.run(RENEW);
  t.same(lostAll(owner), ['f1'], 'the daemon hears it is lost');
  const now = owner.keeper.termOf('f1');
  t.ok(now === undefined || now > first.term + 1, 'if it owns the fleet again, then under a newer term');
  await a.keeper.stop();
  await b.keeper.stop();
});

/** A provider whose mutations are recorded and end only when told (or when their signal aborts). */
function slowProvider(opts: { honoursSignal: boolean }) {
  const calls: string[] = [];
  const pending: (() => void)[] = [];
  const call = (name: string, signal?: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      calls.push(name);
      pending.push(() => {
        calls.push(`${name} ended`);
        resolve();
      });
      if (opts.honoursSignal) {
        signal?.addEventListener('abort', () => {
          calls.push(`${name} aborted`);
          reject(signal.reason as Error);
        });
      }
    });
  const provider: Provider = {
    type: 'local',
    observe: async () => [],
    applyGroup: (_f, s) => call('applyGroup', s),
    deleteGroup: (_r, _f, s) => call('deleteGroup', s),
    increase: async (_r, n, s) => {
      await call('increase', s);
      return n;
    },
    decrease: async (_r, ids, s) => {
      await call('decrease', s);
      return ids;
    },
    connectInfo: async (_r, id) => ({ id, address: 'localhost', port: 0, username: 'u', protocol: 'local' }),
    heartbeat: async () => true,
  };
  return { provider, calls, finishAll: () => pending.splice(0).forEach((f) => f()) };
}

const ref = { provider: 'local' as const, name: 'f1', fleet: 'f1' };

t.test(
  'a provider call starts only under a lease trusted for its budget, and ends before the lease could',
  async (t) => {
    const w = world();
    const a = await manager(w, 'm-a', ['f1']);
    const slow = slowProvider({ honoursSignal: true });
    const bound = leaseBound(slow.provider, a.keeper);

    // A call that runs past its budget is stopped at the budget, while the lease is still valid.
    const call = bound.increase(ref, 1);
    const outcome = call.then(
      () => 'resolved',
      (e: unknown) => e,
    );
    let ownerAtAbort: string | undefined = 'not aborted';
    let abortedAt: number | undefined;
    await w.run(RENEW - 100);
    t.same(slow.calls, ['increase'], 'the call is under way');
    void call.catch(() => {
      abortedAt = w.wall.now().getTime();
      ownerAtAbort = w.db.owner('f1')?.owner;
    });
    w.db.down = true; // no more renewals: the lease only runs down from here
    await w.run(200);
    const e = await outcome;
    t.ok(isFleetError(e) && e.code === 'FENCED', 'stopped with FENCED');
    t.match(String((e as Error).message), /took longer than the 5000 ms its lease on fleet f1 covers/);
    t.same(slow.calls, ['increase', 'increase aborted'], 'the provider saw its signal abort');
    t.equal(ownerAtAbort, 'm-a', 'at that moment the database still counted the lease as ours');
    t.ok(abortedAt !== undefined);

    // Later, with the lease's trust shorter than a call's budget, no call starts (but writes may).
    let refused: unknown;
    for (let i = 0; i < 200 && !refused; i++) {
      await w.run(100);
      if (!a.keeper.owns('f1')) break;
      try {
        a.keeper.callWindow('f1', 'remove 1 instance(s)').done();
      } catch (err) {
        refused = err;
      }
    }
    t.ok(isFleetError(refused) && refused.code === 'FENCED', 'refused while the lease still holds');
    t.match(
      String((refused as Error).message),
      /trusted for only \d+ ms more, and a provider call needs 5000 ms/,
    );
    t.ok(a.keeper.owns('f1') && a.keeper.termOf('f1', 'write') === 1, 'a ledger write is still allowed then');
    const before = slow.calls.length;
    await t.rejects(
      bound.decrease(ref, ['x']),
      { code: 'FENCED' },
      'the bound provider refuses the mutation',
    );
    t.equal(slow.calls.length, before, 'and the provider never hears of it');
    w.db.down = false;
    await a.keeper.stop();
  },
);

t.test('a lease lost mid-call: the call is stopped at once and no further mutation is issued', async (t) => {
  for (const honoursSignal of [true, false]) {
    await t.test(`a provider that ${honoursSignal ? 'honours' : 'ignores'} its signal`, async (t) => {
      const w = world();
      const a = await manager(w, 'm-a', ['f1']);
      const slow = slowProvider({ honoursSignal });
      const bound = leaseBound(slow.provider, a.keeper);
      await w.run(3_000); // the call starts between two rounds; the next one finds the loss
      const outcome = bound.decrease(ref, ['i-1']).then(
        () => 'resolved',
        (e: unknown) => e,
      );
      await w.run(500);
      // Someone else holds the fleet now (the database moved on): the next round finds out.
      const row = w.db.rows.get('f1')!;
      Object.assign(row, { owner: 'm-other', term: row.term + 1 });
      await w.run(2_000);
      const e = await outcome;
      t.ok(isFleetError(e) && e.code === 'FENCED', 'the caller gets FENCED');
      t.match(String((e as Error).message), /lease of fleet f1 was taken over/);
      t.notOk(a.keeper.owns('f1'));
      await t.rejects(bound.increase(ref, 1), { code: 'FENCED' });
      await t.rejects(bound.deleteGroup(ref, undefined), { code: 'FENCED' });
      t.same(
        slow.calls,
        honoursSignal ? ['decrease', 'decrease aborted'] : ['decrease'],
        'the provider got no further mutation',
      );
      slow.finishAll();
      await a.keeper.stop();
    });
  }
});

t.test(
  'hand-over on stop waits for the provider calls under way before the database lets the fleet go',
  async (t) => {
    for (const endsSoon of [true, false]) {
      await t.test(
        `a call that ignores its signal and ${endsSoon ? 'ends a moment later' : 'never ends'}`,
        async (t) => {
          const w = world();
          const a = await manager(w, 'm-a', ['f1']);
          const slow = slowProvider({ honoursSignal: false });
          const bound = leaseBound(slow.provider, a.keeper);
          void bound.applyGroup({ name: 'f1' } as never).catch(() => undefined);
          await w.run(500);
          let stopped = false;
          const stopping = a.keeper.stop().then(() => (stopped = true));
          await settle();
          t.notOk(stopped, 'the release waits');
          t.equal(w.db.owner('f1')?.owner, 'm-a', 'the lease is still held while the call runs');
          if (endsSoon) slow.finishAll();
          else await w.run(RENEW);
          await stopping;
          t.equal(w.db.owner('f1'), undefined, 'released once the call ended (or its budget ran out)');
          t.ok(w.db.rows.get('f1')!.owner === null);
        },
      );
    }
  },
);
