/**
 * Ownership changes of several managers (README "Several managers"), on the simulated provider and
 * manual timers: a daemon plans a fleet only while it owns it AND has taken it over. A fleet whose
 * lease was granted but whose takeover has not run yet is not planned at all — in particular not
 * as "applied but no longer defined", which would remove its instances and delete its group (what
 * a new owner did before, seen in the chaos test) — and a lost fleet is left alone at once.
 */
import t from 'tap';
import { simulate } from './harness.js';

const fleet = (name: string, idle: number) =>
  `name: ${name}\nprovider: { type: local }\nmax_instances: 4\npolicy:\n  - idle_count: ${idle}\n`;

t.test('a fleet is planned only once owned and taken over; a lost one is left alone', async (t) => {
  const owned = new Set<string>(['a', 'b']);
  const h = await simulate({
    fleets: { 'f/a.yaml': fleet('a', 1), 'f/b.yaml': fleet('b', 1) },
    daemon: { stateLock: false, owns: (f) => owned.has(f) },
  });
  await h.daemon.start();
  await h.settle();
  t.equal(h.live('a') + h.live('b'), 0, 'nothing planned before any takeover');
  await h.daemon.ownershipChanged(['a', 'b']);
  await h.advance(60_000);
  t.same([h.live('a'), h.live('b')], [1, 1], 'both converge once taken over');
  const idsOfB = h.sim.live('b').map((i) => i.id);

  // Another manager process: b belongs to someone else for now.
  owned.delete('b');
  h.crashAndRestart();
  await h.daemon.start();
  await h.daemon.ownershipChanged(['a']);
  await h.advance(60_000);
  t.same(
    h.sim.live('b').map((i) => i.id),
    idsOfB,
    'a fleet it does not own is not touched',
  );

  // The lease of b is granted; the daemon has not been told yet (the keeper's round goes on).
  owned.add('b');
  h.files['f/b.yaml'] = fleet('b', 2);
  await h.daemon.reloadConfig();
  await h.advance(120_000);
  t.same(
    h.sim.live('b').map((i) => i.id),
    idsOfB,
    'owned but not taken over: not planned, not deleted',
  );
  t.notOk(
    h.log.lines.some((l) => l['event'] === 'delete-group' || l['event'] === 'remove'),
    'nothing removed, no group deleted',
  );

  await h.daemon.ownershipChanged(['b']);
  await h.advance(60_000);
  const now = h.sim.live('b').map((i) => i.id);
  t.equal(now.length, 2, 'taken over: planned on its definition');
  t.ok(
    idsOfB.every((id) => now.includes(id)),
    'its instances adopted, none deleted',
  );

  // a is lost: demand for it changes, but this daemon no longer acts on it.
  owned.delete('a');
  await h.daemon.ownershipChanged([], ['a']);
  h.files['f/a.yaml'] = fleet('a', 3);
  await h.daemon.reloadConfig();
  await h.advance(120_000);
  t.equal(h.live('a'), 1, 'a lost fleet is left as it was');
  t.same(h.sim.violations, []);
  await h.daemon.stop();
});
