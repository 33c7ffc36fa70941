import t from 'tap';
import type { PolicySpec } from '../../src/model/fleet.js';
import type { Demand } from '../../src/model/observed.js';
import { decideCapacity, type CapacityInstance, type CapacityInput } from '../../src/plan/capacity.js';
import { T0, minutesBefore, policySpec } from '../helpers/fake-state.js';

/** A ready, healthy, unused instance created an hour before T0, idle since 59 minutes. */
function inst(id: string, overrides: Partial<CapacityInstance> = {}): CapacityInstance {
  return {
    id,
    state: 'ready',
    created_at: minutesBefore(T0, 60),
    ready_at: minutesBefore(T0, 59),
    use_count: 0,
    acquired: 0,
    healthy: true,
    ...overrides,
  };
}

interface Case {
  name: string;
  fleet?: Partial<CapacityInput['fleet']>;
  policy?: Partial<PolicySpec>;
  demand?: Partial<Demand>;
  instances?: CapacityInstance[];
  expect: {
    current?: number;
    target: number;
    increase: number;
    remove?: string[];
    reasons?: string[];
    reason?: string | RegExp;
    details?: string[];
  };
}

function decide(c: Omit<Case, 'name' | 'expect'>, now = T0) {
  return decideCapacity({
    fleet: { capacity_per_instance: 1, max_instances: 10, max_use_count: 0, ...c.fleet },
    policy: policySpec(c.policy),
    now: new Date(now),
    instances: c.instances ?? [],
    demand: { acquired: 0, reserved: 0, pending: 0, ...c.demand },
  });
}

const cases: Case[] = [
  {
    name: 'idle_count 0 and no demand scales to zero even with capacity 4 (GitLab #37643)',
    fleet: { capacity_per_instance: 4 },
    instances: [inst('i-1'), inst('i-2'), inst('i-3')],
    expect: { current: 3, target: 0, increase: 0, remove: ['i-1', 'i-2', 'i-3'], reasons: ['idle_time'] },
  },
  {
    name: 'idle_count 0: the last instance goes too, once idle past idle_time',
    fleet: { capacity_per_instance: 4 },
    instances: [inst('i-1', { last_used_at: minutesBefore(T0, 21) })],
    expect: { current: 1, target: 0, increase: 0, remove: ['i-1'], details: ['idle 21m > idle_time 20m'] },
  },
  {
    name: 'idle_count 0: an instance idle less than idle_time stays',
    fleet: { capacity_per_instance: 4 },
    instances: [inst('i-1', { last_used_at: minutesBefore(T0, 5) })],
    expect: { current: 1, target: 1, increase: 0, remove: [] },
  },
  {
    name: 'idle_count in slots, not instances',
    fleet: { capacity_per_instance: 2 },
    policy: { idle_count: 4 },
    expect: {
      current: 0,
      target: 2,
      increase: 2,
      reason: 'idle_count 4 slots / 2 per instance = 2 instances',
    },
  },
  {
    name: 'demand and idle capacity together',
    fleet: { capacity_per_instance: 2, max_instances: 4 },
    policy: { idle_count: 2 },
    demand: { acquired: 2, reserved: 1, pending: 1 },
    instances: [inst('i-1', { state: 'in_use', acquired: 2 })],
    expect: {
      current: 1,
      target: 3,
      increase: 2,
      reason: 'demand 3 in use + 1 pending + idle 2 = 6 slots / 2 per instance = 3 (max_instances 4)',
    },
  },
  {
    name: 'max_instances caps the target',
    fleet: { max_instances: 4 },
    demand: { pending: 10 },
    expect: { target: 4, increase: 4, reason: /= 10, capped at max_instances 4$/ },
  },
  {
    name: 'max_instances counts deleting instances: growth waits for them',
    fleet: { max_instances: 4 },
    demand: { acquired: 1, pending: 5 },
    instances: [
      inst('i-1', { state: 'in_use', acquired: 1 }),
      inst('d-1', { state: 'deleting' }),
      inst('d-2', { state: 'deleting' }),
    ],
    expect: {
      current: 1,
      target: 2,
      increase: 1,
      reason: /; 2 more wait: 3 instances already count against max_instances$/,
    },
  },
  {
    name: 'scale_factor adds idle capacity up to its limit',
    policy: { idle_count: 1, scale_factor: 0.5, scale_factor_limit: 2 },
    demand: { acquired: 10 },
    fleet: { max_instances: 20 },
    expect: {
      target: 12,
      increase: 12,
      reason:
        'demand 10 in use + 0 pending + idle 2 (scale_factor 0.5 × 10, limit 2) = 12 slots / 1 per instance = 12 (max_instances 20)',
    },
  },
  {
    name: 'scale_factor without a limit',
    policy: { idle_count: 1, scale_factor: 0.5 },
    demand: { acquired: 10 },
    fleet: { max_instances: 0 },
    expect: {
      target: 15,
      increase: 15,
      reason:
        'demand 10 in use + 0 pending + idle 5 (scale_factor 0.5 × 10) = 15 slots / 1 per instance = 15',
    },
  },
  {
    name: 'idle_count wins over a smaller scale_factor share',
    policy: { idle_count: 3, scale_factor: 0.1 },
    demand: { acquired: 5 },
    expect: { target: 8, increase: 8, reason: /idle 3 = 8 slots/ },
  },
  {
    name: 'max_use_count 1: a fresh unused instance is not churned',
    fleet: { max_use_count: 1 },
    policy: { idle_count: 1 },
    instances: [inst('i-1')],
    expect: { current: 1, target: 1, increase: 0, remove: [] },
  },
  {
    name: 'max_use_count reached: removed when idle and replaced',
    fleet: { max_use_count: 1 },
    policy: { idle_count: 1 },
    instances: [inst('i-1', { use_count: 1, last_used_at: minutesBefore(T0, 1) })],
    expect: {
      current: 1,
      target: 1,
      increase: 1,
      remove: ['i-1'],
      reasons: ['max_use_count'],
      details: ['used 1 of max_use_count 1'],
    },
  },
  {
    name: 'busy instances are never removed, whatever else is true of them',
    fleet: { max_use_count: 1, max_instances: 1 },
    demand: { acquired: 1 },
    instances: [
      inst('i-1', {
        state: 'in_use',
        acquired: 1,
        use_count: 5,
        healthy: false,
        last_used_at: minutesBefore(T0, 600),
      }),
    ],
    expect: { current: 1, target: 1, increase: 0, remove: [] },
  },
  {
    name: 'an unhealthy idle instance is removed and replaced',
    policy: { idle_count: 1 },
    instances: [inst('i-1', { healthy: false, last_used_at: minutesBefore(T0, 1) })],
    expect: { current: 1, target: 1, increase: 1, remove: ['i-1'], reasons: ['unhealthy'] },
  },
  {
    name: 'scale-in: oldest idle first, only past idle_time, only while usable - 1 >= needed',
    policy: { idle_count: 2 },
    instances: [
      inst('i-a', { last_used_at: minutesBefore(T0, 25) }),
      inst('i-b', { last_used_at: minutesBefore(T0, 30) }),
      inst('i-c', { last_used_at: minutesBefore(T0, 40) }),
      inst('i-d', { last_used_at: minutesBefore(T0, 10) }),
    ],
    expect: {
      current: 4,
      target: 2,
      increase: 0,
      remove: ['i-c', 'i-b'],
      details: ['idle 40m > idle_time 20m', 'idle 30m > idle_time 20m'],
    },
  },
  {
    name: 'scale-in counts from ready_at, then created_at, when never used',
    instances: [
      inst('i-1', { ready_at: minutesBefore(T0, 19) }),
      inst('i-2', { ready_at: undefined, created_at: minutesBefore(T0, 25) }),
    ],
    expect: { current: 2, target: 1, increase: 0, remove: ['i-2'], details: ['idle 25m > idle_time 20m'] },
  },
  {
    name: 'creating instances count as usable and are not scaled in',
    policy: { idle_count: 1 },
    instances: [inst('c-1', { state: 'creating' }), inst('c-2', { state: 'creating' })],
    expect: { current: 2, target: 2, increase: 0, remove: [] },
  },
  {
    name: 'draining instances go once idle, with their drain reason; busy ones wait',
    policy: { idle_count: 1 },
    instances: [
      inst('r-1', { last_used_at: minutesBefore(T0, 1) }),
      inst('d-1', { state: 'draining', drain_reason: 'spot' }),
      inst('d-2', { state: 'draining', acquired: 1 }),
    ],
    expect: { current: 1, target: 1, increase: 0, remove: ['d-1'], reasons: ['spot'] },
  },
  {
    name: 'lowered max_instances: idle instances above it go at once, oldest idle first',
    fleet: { max_instances: 2 },
    policy: { idle_count: 5 },
    instances: [
      inst('i-1', { last_used_at: minutesBefore(T0, 1) }),
      inst('i-2', { last_used_at: minutesBefore(T0, 2) }),
      inst('i-3', { last_used_at: minutesBefore(T0, 3) }),
      inst('i-4', { state: 'in_use', acquired: 1 }),
    ],
    expect: { current: 4, target: 2, increase: 0, remove: ['i-3', 'i-2'], reasons: ['scale_in'] },
  },
];

t.test('decideCapacity', async (t) => {
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const d = decide(c);
      if (c.expect.current !== undefined) t.equal(d.current, c.expect.current, 'current');
      t.equal(d.target, c.expect.target, 'target');
      t.equal(d.increase, c.expect.increase, 'increase');
      if (c.expect.remove)
        t.same(
          d.remove.map((r) => r.id),
          c.expect.remove,
          'removed ids',
        );
      if (c.expect.reasons) {
        t.same([...new Set(d.remove.map((r) => r.reason))], c.expect.reasons, 'removal reasons');
      }
      if (c.expect.details)
        t.same(
          d.remove.map((r) => r.detail),
          c.expect.details,
          'removal details',
        );
      if (typeof c.expect.reason === 'string') t.equal(d.reason, c.expect.reason, 'reason');
      else if (c.expect.reason) t.match(d.reason, c.expect.reason, 'reason');
    });
  }
});

t.test('idle_count 0 with capacity 4 converges to zero over ticks', async (t) => {
  let instances = [inst('i-1', { last_used_at: T0 })];
  const fleet = { capacity_per_instance: 4, max_instances: 10, max_use_count: 0 };
  const at = (minutes: number) => new Date(Date.parse(T0) + minutes * 60_000);
  const tick = (minutes: number) =>
    decideCapacity({
      fleet,
      policy: policySpec(),
      now: at(minutes),
      instances,
      demand: { acquired: 0, reserved: 0, pending: 0 },
    });
  t.equal(tick(10).remove.length, 0, 'kept at 10m');
  const later = tick(21);
  t.same(
    later.remove.map((r) => r.id),
    ['i-1'],
    'removed after idle_time',
  );
  instances = [];
  t.equal(tick(22).target, 0, 'stays at zero');
  t.equal(tick(22).increase, 0);
});

t.test('output does not depend on input order', async (t) => {
  const c = cases.find((x) => x.name.startsWith('scale-in: oldest')) as Case;
  const forward = decide(c);
  const backward = decide({ ...c, instances: [...(c.instances ?? [])].reverse() });
  t.same(backward, forward);
  const ties = [inst('b'), inst('a'), inst('c')];
  const tied = decide({ instances: ties });
  t.same(
    tied.remove.map((r) => r.id),
    ['a', 'b', 'c'],
    'equal idle ages break ties by id',
  );
});

t.test('an unreadable idle_time is a config error', async (t) => {
  t.throws(() => decide({ policy: { idle_time: 'soon' }, instances: [inst('i-1')] }), {
    code: 'CONFIG_INVALID',
  });
});
