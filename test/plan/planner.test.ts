import t from 'tap';
import type { FleetPlan, Plan } from '../../src/model/plan.js';
import { desiredGroupSettings } from '../../src/providers/aws/group-settings.js';
import { planFleets } from '../../src/plan/planner.js';
import { FakeState, T0, fleetSpec, minutesBefore, type FleetOverrides } from '../helpers/fake-state.js';

const fleetOf = (plan: Plan, name: string) => plan.fleets.find((f) => f.fleet === name) as FleetPlan;
const paths = (fp: FleetPlan) => fp.changes.map((c) => c.path);
/** Group settings exactly as the fleet wants them, so only spec changes show. */
const settingsOf = (overrides: FleetOverrides) => desiredGroupSettings(fleetSpec(overrides));
const aws = (region: string) => ({
  type: 'aws' as const,
  region,
  create: { launch_template: { id: 'lt-1', version: '$Latest' }, subnets: ['s-1'] },
});

t.test('a new fleet file creates the fleet', async (t) => {
  const plan = planFleets(new FakeState().desiredFleet({ name: 'new', policy: [{ idle_count: 2 }] }).input());
  const fp = fleetOf(plan, 'new');
  t.equal(fp.action, 'create');
  t.equal(fp.unchanged, 0);
  t.ok(
    fp.changes.every((c) => c.old === undefined && c.new !== undefined),
    'every attribute is added',
  );
  t.ok(paths(fp).includes('policy[0].idle_count'));
  t.same(fp.source, { file: 'fleets/new.yaml', line: 1 });
  t.equal(fp.group, 'new');
  t.equal(fp.capacity?.increase, 2, 'idle_count 2 slots at 1 per instance');
  t.same(plan.summary, { add: 3, change: 0, destroy: 0 }, '1 fleet + 2 instances');
  t.equal(plan.errored, false);
  t.equal(plan.createdAt, T0);
  t.same(plan.basis, { observed: 'observed-hash', fleets: 'fleets-hash' });
});

t.test('an unchanged fleet is a noop', async (t) => {
  const plan = planFleets(new FakeState().fleet({ name: 'same' }).group('same').input());
  const fp = fleetOf(plan, 'same');
  t.equal(fp.action, 'noop');
  t.same(fp.changes, []);
  t.ok(fp.unchanged > 20, `all leaves unchanged (${fp.unchanged})`);
  t.same(plan.summary, { add: 0, change: 0, destroy: 0 });
});

t.test('a changed spec updates the fleet with dotted paths', async (t) => {
  const state = new FakeState()
    .appliedFleet({ name: 'web', docker: { image: 'alpine:3.19' }, gitlab: { token: { env: 'OLD_TOKEN' } } })
    .desiredFleet({
      name: 'web',
      docker: { image: 'alpine:3.20' },
      gitlab: { token: { file: '/run/token' } },
      max_use_count: 5,
    })
    .group('web');
  const fp = fleetOf(planFleets(state.input()), 'web');
  t.equal(fp.action, 'update');
  t.same(paths(fp), ['docker.image', 'gitlab.token', 'max_use_count']);
  t.same(fp.changes[0], { path: 'docker.image', old: 'alpine:3.19', new: 'alpine:3.20' });
  t.equal(fp.changes[1]?.sensitive, true, 'gitlab.token is sensitive');
  t.notOk(
    fp.changes.some((c) => c.forcesReplacement),
    'no replacement',
  );
  const before = fleetOf(planFleets(new FakeState().fleet({ name: 'web' }).group('web').input()), 'web');
  t.equal(fp.unchanged, before.unchanged - 3, 'unchanged counts the other leaves');
});

t.test('policy edits diff by index', async (t) => {
  const state = new FakeState()
    .appliedFleet({ name: 'p', policy: [{}, { periods: ['* 8-17 * * mon-fri'], idle_count: 2 }] })
    .desiredFleet({ name: 'p', policy: [{}, { periods: ['* 8-18 * * mon-fri'], idle_count: 2 }] })
    .group('p');
  const fp = fleetOf(planFleets(state.input()), 'p');
  t.same(fp.changes, [
    { path: 'policy[1].periods', old: ['* 8-17 * * mon-fri'], new: ['* 8-18 * * mon-fri'] },
  ]);
});

t.test('provider region or type changes force replacement', async (t) => {
  const region = new FakeState()
    .appliedFleet({ name: 'r', provider: aws('eu-west-1') })
    .desiredFleet({ name: 'r', provider: aws('eu-central-1') })
    .group('r', { settings: settingsOf({ name: 'r', provider: aws('eu-central-1') }) });
  const plan = planFleets(region.input());
  const fp = fleetOf(plan, 'r');
  t.equal(fp.action, 'update');
  t.same(fp.changes, [
    { path: 'provider.region', old: 'eu-west-1', new: 'eu-central-1', forcesReplacement: true },
  ]);
  t.same(plan.summary, { add: 1, change: 0, destroy: 1 }, 'a replacement is 1 add + 1 destroy');

  const type = new FakeState()
    .appliedFleet({ name: 'x' })
    .desiredFleet({ name: 'x', provider: aws('eu-west-1') });
  const tp = fleetOf(planFleets(type.input()), 'x');
  const forced = tp.changes.filter((c) => c.forcesReplacement).map((c) => c.path);
  t.same(forced, ['provider.region', 'provider.type'], 'fields a provider switch adds force replacement too');
  t.ok(tp.diagnostics.some((d) => d.code === 'GROUP_REPLACED' && d.severity === 'warning'));
  t.notOk(
    tp.diagnostics.some((d) => d.code === 'GROUP_MISSING'),
    'a moved group is not drift',
  );
});

t.test('provider group settings that differ update the fleet', async (t) => {
  const spec = { name: 'asg', provider: aws('eu-west-1'), max_instances: 10 };
  const drifted = { ...settingsOf(spec), max_size: 3 };
  const plan = planFleets(new FakeState().fleet(spec).group('asg', { settings: drifted }).input());
  const fp = fleetOf(plan, 'asg');
  t.equal(fp.action, 'update');
  t.same(fp.changes, [{ path: 'group.max_size', old: 3, new: 10 }]);
  t.same(plan.summary, { add: 0, change: 1, destroy: 0 });
  const inStep = planFleets(
    new FakeState()
      .fleet(spec)
      .group('asg', { settings: settingsOf(spec) })
      .input(),
  );
  t.equal(fleetOf(inStep, 'asg').action, 'noop', 'equal settings are no change');
  const extra = { ...settingsOf(spec), desired_capacity: 7 };
  const ignored = planFleets(new FakeState().fleet(spec).group('asg', { settings: extra }).input());
  t.equal(fleetOf(ignored, 'asg').action, 'noop', 'settings the fleet does not name are not compared');
});

t.test('a removed fleet file destroys the fleet and all its instances', async (t) => {
  const state = new FakeState()
    .appliedFleet({ name: 'gone' })
    .ready('gone', 'i-2')
    .ready('gone', 'i-1', { state: 'in_use', acquired: 1 })
    .instance('gone', 'i-3', { state: 'deleting' });
  const plan = planFleets(state.input());
  const fp = fleetOf(plan, 'gone');
  t.equal(fp.action, 'delete');
  t.notOk(fp.source, 'no source file');
  t.ok(
    fp.changes.every((c) => c.new === undefined && c.old !== undefined),
    'every attribute removed',
  );
  t.same(fp.capacity, {
    current: 2,
    target: 0,
    reason: 'fleet removed from configuration',
    increase: 0,
    remove: [
      { id: 'i-1', reason: 'fleet_deleted' },
      { id: 'i-2', reason: 'fleet_deleted' },
    ],
  });
  t.ok(
    fp.diagnostics.some((d) => d.code === 'BUSY_INSTANCES' && d.message.includes('i-1')),
    'busy instance warned',
  );
  t.same(plan.summary, { add: 0, change: 0, destroy: 3 });
});

t.test('a vanished group is drift: warned and recreated', async (t) => {
  const state = new FakeState().fleet({ name: 'd' }).group('d', { exists: false });
  const plan = planFleets(state.input());
  const fp = fleetOf(plan, 'd');
  t.equal(fp.action, 'create');
  const w = fp.diagnostics.find((d) => d.code === 'GROUP_MISSING');
  t.equal(w?.severity, 'warning');
  t.equal(plan.errored, false, 'a warning does not make the plan errored');
  t.same(plan.summary, { add: 1, change: 0, destroy: 0 });
  const absent = planFleets(new FakeState().fleet({ name: 'd' }).input());
  t.equal(fleetOf(absent, 'd').action, 'create', 'a group the provider did not report at all is missing too');
});

t.test('provider diagnostics are copied; an error makes the plan errored', async (t) => {
  const state = new FakeState().fleet({ name: 'e' }).group('e', {
    diagnostics: [
      { severity: 'error', code: 'ASG_NOT_OWNED', message: 'owned by someone else', hint: 'adopt it' },
    ],
  });
  const plan = planFleets(state.input());
  t.same(fleetOf(plan, 'e').diagnostics, [
    { severity: 'error', code: 'ASG_NOT_OWNED', message: 'owned by someone else', hint: 'adopt it' },
  ]);
  t.equal(plan.errored, true);
});

t.test('an unreadable policy is an error diagnostic, not a throw', async (t) => {
  const plan = planFleets(
    new FakeState().desiredFleet({ name: 'bad', policy: [{ periods: ['nope'] }] }).input(),
  );
  const fp = fleetOf(plan, 'bad');
  t.equal(fp.capacity, undefined);
  t.equal(fp.diagnostics[0]?.code, 'POLICY_INVALID');
  t.equal(plan.errored, true);
});

t.test('outside every policy period the fleet keeps no idle capacity, and says so', async (t) => {
  const night = [{ periods: ['* 0-5 * * *'], idle_count: 4 }];
  const fp = fleetOf(planFleets(new FakeState().desiredFleet({ name: 'n', policy: night }).input()), 'n');
  t.equal(fp.capacity?.increase, 0);
  t.match(fp.capacity?.reason, /no policy period matches now/);
  const early = planFleets(
    new FakeState().desiredFleet({ name: 'n', policy: night }).input('2026-03-01T03:00:00Z'),
  );
  t.equal(fleetOf(early, 'n').capacity?.increase, 4, 'inside the period the entry applies');
});

t.test('duplicate fleet names are an error', async (t) => {
  const plan = planFleets(
    new FakeState().desiredFleet({ name: 'twin' }).desiredFleet({ name: 'twin' }).input(),
  );
  t.ok(fleetOf(plan, 'twin').diagnostics.some((d) => d.code === 'DUPLICATE_FLEET'));
  t.equal(plan.fleets.length, 1);
});

t.test('instances merge provider truth with the ledger', async (t) => {
  const state = new FakeState()
    .fleet({ name: 'm', max_instances: 5, policy: [{ idle_count: 5 }] })
    .instance('m', 'adopted') // running, no ledger row: ready, use_count 0
    .instance('m', 'booting', { state: 'creating' })
    .ledger('m', 'booting', { state: 'ready' }) // provider says creating: creating wins
    .instance('m', 'leaving', { state: 'deleting' })
    .instance('m', 'vanished', { state: 'gone' })
    .ledger('m', 'ghost') // the provider no longer shows it: not counted
    .ready('m', 'sick', { health_failures: 3, last_used_at: minutesBefore(T0, 1) });
  const fp = fleetOf(planFleets(state.input()), 'm');
  t.equal(fp.capacity?.current, 3, 'adopted + booting + sick are usable-state');
  t.same(fp.capacity?.remove, [{ id: 'sick', reason: 'unhealthy', detail: 'failed health checks' }]);
  // needed 5; usable after removal 2; 4 non-gone instances against max 5 leave 1 of headroom.
  t.equal(fp.capacity?.increase, 1);
  t.equal(fp.capacity?.target, 3);
});

t.test('demand drives capacity; absent demand is zero', async (t) => {
  const state = new FakeState()
    .fleet({ name: 'busy', capacity_per_instance: 2 })
    .ready('busy', 'i-1', { state: 'in_use', acquired: 2 })
    .demand('busy', { acquired: 2, pending: 3 })
    .fleet({ name: 'quiet' })
    .ready('quiet', 'q-1', { last_used_at: minutesBefore(T0, 45) });
  const plan = planFleets(state.input());
  t.equal(fleetOf(plan, 'busy').capacity?.increase, 2, 'ceil(5 / 2) = 3 needed, 1 there');
  t.same(
    fleetOf(plan, 'quiet').capacity?.remove.map((r) => r.id),
    ['q-1'],
  );
  t.same(plan.summary, { add: 2, change: 0, destroy: 1 });
});

t.test('fleets are sorted by name and summaries add up', async (t) => {
  const state = new FakeState()
    .desiredFleet({ name: 'zeta' })
    .appliedFleet({ name: 'alpha' })
    .fleet({ name: 'mid' })
    .appliedFleet({ name: 'beta', max_instances: 3 })
    .desiredFleet({ name: 'beta', max_instances: 4 })
    .group('beta')
    .group('mid');
  const plan = planFleets(state.input());
  t.same(
    plan.fleets.map((f) => [f.fleet, f.action]),
    [
      ['alpha', 'delete'],
      ['beta', 'update'],
      ['mid', 'noop'],
      ['zeta', 'create'],
    ],
  );
  t.same(plan.summary, { add: 1, change: 1, destroy: 1 });
});

t.test('the plan is plain JSON and deterministic', async (t) => {
  const build = () =>
    new FakeState()
      .fleet({ name: 'b' })
      .ready('b', 'i-2')
      .ready('b', 'i-1')
      .appliedFleet({ name: 'a' })
      .input();
  const one = planFleets(build());
  t.same(JSON.parse(JSON.stringify(one)), one);
  t.equal(JSON.stringify(planFleets(build())), JSON.stringify(one));
});

t.test('instances requested but not listed yet are not requested again', async (t) => {
  const plan = planFleets(
    new FakeState()
      .fleet({ name: 'slow', policy: [{ idle_count: 3 }] })
      .ready('slow', 'i-1')
      .group('slow', { requested: 2 })
      .input(),
  );
  const fp = fleetOf(plan, 'slow');
  t.equal(fp.capacity?.current, 3, 'one listed + two requested');
  t.equal(fp.capacity?.increase, 0);
  t.same(fp.capacity?.remove, []);
});

t.test('a fixed-capacity group (static hosts) plans no increase or removal', async (t) => {
  const plan = planFleets(
    new FakeState()
      .fleet({ name: 'hosts', max_instances: 5, policy: [{ idle_count: 5, idle_time: '1m' }] })
      .ready('hosts', 'a:22', { last_used_at: minutesBefore(T0, 30) })
      .instance('hosts', 'b:22', { healthy: false })
      .group('hosts', { fixedCapacity: true })
      .input(),
  );
  const fp = fleetOf(plan, 'hosts');
  t.equal(fp.capacity?.increase, 0);
  t.same(fp.capacity?.remove, []);
  t.equal(fp.capacity?.current, 1);
  t.match(fp.capacity?.reason, /fixed capacity: 1 of 2 host\(s\) usable \(wanted \d+\)/);
  t.same(plan.summary, { add: 0, change: 0, destroy: 0 });
});

t.test('an adopted Auto Scaling group that does not exist is an error, not a create', async (t) => {
  const adopt = { type: 'aws' as const, region: 'eu-west-1', auto_scaling_group: 'ci-existing' };
  const plan = planFleets(
    new FakeState()
      .desiredFleet({ name: 'adopt', provider: adopt })
      .group('adopt', { exists: false })
      .input(),
  );
  const fp = fleetOf(plan, 'adopt');
  t.equal(plan.errored, true);
  t.match(fp.diagnostics, [{ severity: 'error', code: 'GROUP_NOT_FOUND' }]);
});

t.test('diagnostics that belong to no fleet reach the plan and error it', async (t) => {
  const state = new FakeState().fleet({ name: 'a' }).group('a');
  const observed = {
    ...state.observed(),
    diagnostics: [
      { severity: 'warning' as const, code: 'ORPHAN_GROUP', message: 'aws group x is an orphan' },
    ],
  };
  const plan = planFleets({ ...state.input(), observed });
  t.same(
    plan.diagnostics.map((d) => d.code),
    ['ORPHAN_GROUP'],
  );
  t.equal(plan.errored, false);
  const failing = planFleets({
    ...state.input(),
    observed: { ...observed, diagnostics: [{ severity: 'error', code: 'X', message: 'bad' }] },
  });
  t.equal(failing.errored, true);
});
