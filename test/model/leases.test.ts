import t from 'tap';
import {
  assignFleets,
  holdsTerm,
  planLeaseRound,
  rendezvousOwner,
  trustedUntil,
  validFor,
  type LeaseRow,
  type Member,
} from '../../src/model/leases.js';

const live = (...ids: string[]): Member[] => ids.map((id) => ({ id, alive: true, stopping: false }));
const fleets = Array.from({ length: 1000 }, (_v, i) => `fleet-${i}`);

t.test('rendezvous spreads fleets evenly and every member computes the same owner', async (t) => {
  const members = live('m-a', 'm-b', 'm-c');
  const a = assignFleets(fleets, members);
  const b = assignFleets(fleets, [...members].reverse());
  t.same([...a], [...b], 'order of members does not matter');
  const counts = new Map<string, number>();
  for (const owner of a.values()) counts.set(owner, (counts.get(owner) ?? 0) + 1);
  t.equal(counts.size, 3);
  for (const [m, n] of counts) t.ok(n > 250 && n < 420, `${m} owns ${n} of 1000`);
  t.equal(rendezvousOwner('x', []), undefined);
});

t.test('a member joining or leaving moves few fleets, and only to or from it', async (t) => {
  const before = assignFleets(fleets, live('m-a', 'm-b', 'm-c'));
  const joined = assignFleets(fleets, live('m-a', 'm-b', 'm-c', 'm-d'));
  const moves = fleets.filter((f) => before.get(f) !== joined.get(f));
  const moved = moves.length;
  t.same(
    moves.filter((f) => joined.get(f) !== 'm-d'),
    [],
    'a moved fleet moves to the newcomer',
  );
  t.ok(moved > 150 && moved < 350, `${moved} of 1000 moved to the 4th member (ideal 250)`);
  const left = assignFleets(fleets, live('m-a', 'm-c'));
  t.same(
    fleets.filter((f) => before.get(f) !== 'm-b' && left.get(f) !== before.get(f)),
    [],
    'fleets of the others stay put',
  );
});

t.test('dead and stopping members own nothing', async (t) => {
  const members: Member[] = [
    { id: 'm-a', alive: true, stopping: false },
    { id: 'm-b', alive: false, stopping: false },
    { id: 'm-c', alive: true, stopping: true },
  ];
  t.same(new Set(assignFleets(fleets, members).values()), new Set(['m-a']));
  t.same(assignFleets(fleets, []).size, 0);
});

t.test('a round renews mine, acquires free ones that should be mine, leaves the rest', async (t) => {
  const members = live('m-a', 'm-b');
  const owners = assignFleets(['f1', 'f2', 'f3', 'f4', 'f5', 'f6'], members);
  const mine = [...owners].filter(([, o]) => o === 'm-a').map(([f]) => f);
  const theirs = [...owners].filter(([, o]) => o === 'm-b').map(([f]) => f);
  t.ok(mine.length > 0 && theirs.length > 0, 'both own some');
  const leases: LeaseRow[] = [
    { fleet: mine[0]!, owner: 'm-a', term: 4, remainingMs: 9000 },
    { fleet: theirs[0]!, owner: 'm-a', term: 2, remainingMs: 9000 },
    ...(theirs[1] ? [{ fleet: theirs[1], owner: null, term: 7, remainingMs: -100 }] : []),
  ];
  const steps = planLeaseRound({ me: 'm-a', fleets: [...owners.keys()], leases, members, stopping: false });
  t.same(
    steps.filter((s) => s.fleet === mine[0]),
    [{ action: 'renew', fleet: mine[0], term: 4 }],
  );
  t.same(
    steps.filter((s) => s.fleet === theirs[0]),
    [{ action: 'release', fleet: theirs[0], term: 2 }],
    'held but should be the other live member’s: handed over',
  );
  for (const f of mine.slice(1))
    t.same(
      steps.filter((s) => s.fleet === f),
      [{ action: 'acquire', fleet: f }],
    );
  for (const f of theirs.slice(1))
    t.same(
      steps.filter((s) => s.fleet === f),
      [],
      'free, but not mine',
    );
});

t.test('a lease held by someone else is never taken before it expires', async (t) => {
  const steps = planLeaseRound({
    me: 'm-a',
    fleets: ['f'],
    leases: [{ fleet: 'f', owner: 'm-gone', term: 3, remainingMs: 1 }],
    members: live('m-a'),
    stopping: false,
  });
  t.same(steps, []);
  const expired = planLeaseRound({
    me: 'm-a',
    fleets: ['f'],
    leases: [{ fleet: 'f', owner: 'm-gone', term: 3, remainingMs: 0 }],
    members: live('m-a'),
    stopping: false,
  });
  t.same(expired, [{ action: 'acquire', fleet: 'f' }]);
});

t.test('a stranded lease is taken by any eligible member after strandedMs', async (t) => {
  const members = live('m-a', 'm-b');
  const fleet = ['x1', 'x2', 'x3', 'x4', 'x5'].find((f) => rendezvousOwner(f, ['m-a', 'm-b']) === 'm-b')!;
  const round = (remainingMs: number) =>
    planLeaseRound({
      me: 'm-a',
      fleets: [fleet],
      leases: [{ fleet, owner: null, term: 1, remainingMs }],
      members,
      stopping: false,
      strandedMs: 15_000,
    });
  t.same(round(-14_999), []);
  t.same(round(-15_000), [{ action: 'acquire', fleet }]);
});

t.test('stopping releases everything and acquires nothing; gone fleets are released', async (t) => {
  const steps = planLeaseRound({
    me: 'm-a',
    fleets: ['f1', 'f2'],
    leases: [
      { fleet: 'f1', owner: 'm-a', term: 1, remainingMs: 5000 },
      { fleet: 'gone', owner: 'm-a', term: 9, remainingMs: 5000 },
    ],
    members: [{ id: 'm-a', alive: true, stopping: true }],
    stopping: true,
  });
  t.same(steps, [
    { action: 'release', fleet: 'gone', term: 9 },
    { action: 'release', fleet: 'f1', term: 1 },
  ]);
});

t.test('term comparison: only the current, unexpired term of the same owner holds', async (t) => {
  const row: LeaseRow = { fleet: 'f', owner: 'm-a', term: 5, remainingMs: 100 };
  t.ok(holdsTerm(row, 'm-a', 5));
  t.notOk(holdsTerm(row, 'm-a', 4), 'stale term');
  t.notOk(holdsTerm(row, 'm-b', 5), 'other owner');
  t.notOk(holdsTerm({ ...row, remainingMs: 0 }, 'm-a', 5), 'expired');
  t.notOk(holdsTerm(undefined, 'm-a', 5));
});

t.test('trust window: a call starts only if the lease outlasts it', async (t) => {
  const until = trustedUntil(1_000, 15_000, 1_000);
  t.equal(until, 15_000);
  t.ok(validFor(until, 5_000, 10_000));
  t.notOk(validFor(until, 5_001, 10_000));
  t.notOk(validFor(undefined, 0, 0), 'no lease, no call');
});
