import t from 'tap';
import type { Plan } from '../../src/model/plan.js';
import { desiredGroupSettings } from '../../src/providers/aws/group-settings.js';
import { planFleets } from '../../src/plan/planner.js';
import { renderPlan } from '../../src/plan/render.js';
import { FakeState, T0, fleetSpec, minutesBefore, type FleetOverrides } from '../helpers/fake-state.js';

const aws = (region: string) => ({
  type: 'aws' as const,
  region,
  create: { launch_template: { id: 'lt-0abc', version: '$Latest' }, subnets: ['subnet-a', 'subnet-b'] },
});
const settingsOf = (o: FleetOverrides) => desiredGroupSettings(fleetSpec(o));

/** A plan with every kind of change: create, update, replace, destroy, scale-only, drift, diagnostics. */
function everythingPlan(): Plan {
  const linuxOld: FleetOverrides = {
    name: 'linux-small',
    capacity_per_instance: 2,
    docker: { image: 'alpine:3.19' },
    gitlab: { token: { env: 'OLD_TOKEN_VAR' } },
  };
  const linuxNew: FleetOverrides = {
    ...linuxOld,
    docker: { image: 'alpine:3.20', volumes: ['/cache'] },
    gitlab: { token: { env: 'NEW_TOKEN_VAR' } },
    policy: [{ idle_count: 2, idle_time: '20m' }],
  };
  const gpuOld: FleetOverrides = {
    name: 'gpu',
    provider: aws('eu-west-1'),
    executor: 'instance',
    docker: null,
  };
  const gpuNew: FleetOverrides = { ...gpuOld, provider: aws('eu-central-1') };
  const state = new FakeState()
    // created: new fleet file, AWS, keeps 2 idle slots
    .desiredFleet({
      name: 'arm-large',
      provider: aws('eu-west-1'),
      max_instances: 8,
      policy: [{ idle_count: 2 }],
    })
    // updated in place, with capacity changes: one instance idle too long, demand needs more
    .appliedFleet(linuxOld)
    .desiredFleet(linuxNew)
    .ready('linux-small', 'i-0aaa', { last_used_at: minutesBefore(T0, 25) })
    .ready('linux-small', 'i-0bbb', { last_used_at: minutesBefore(T0, 45) })
    .ready('linux-small', 'i-0ccc', { state: 'in_use', acquired: 2, use_count: 7 })
    .demand('linux-small', { acquired: 2 })
    // replaced: region moves
    .appliedFleet(gpuOld)
    .desiredFleet(gpuNew)
    .group('gpu', {
      settings: settingsOf(gpuNew),
      diagnostics: [
        {
          severity: 'warning',
          code: 'SPOT_INTERRUPTION',
          message: 'instance i-0ddd received a spot interruption notice',
        },
      ],
    })
    // destroyed: file removed
    .appliedFleet({ name: 'legacy', provider: { type: 'static', hosts: ['10.0.0.5', '10.0.0.6:2222'] } })
    .ready('legacy', '10.0.0.5')
    .ready('legacy', '10.0.0.6:2222')
    // scale only: an instance used up
    .fleet({ name: 'scaled', max_use_count: 1, policy: [{ idle_count: 1 }] })
    .ready('scaled', 'i-0eee', { use_count: 1, last_used_at: minutesBefore(T0, 2) })
    // noop, not shown
    .fleet({ name: 'quiet' })
    .group('quiet')
    // drift: group gone, plus a provider error
    .fleet({ name: 'drifted' })
    .group('drifted', {
      exists: false,
      diagnostics: [
        {
          severity: 'error',
          code: 'PROVIDER_UNREACHABLE',
          message: 'cannot reach the local pool directory',
          hint: 'check that the state directory is writable',
        },
      ],
    });
  return planFleets(state.input());
}

function noChangesPlan(): Plan {
  return planFleets(new FakeState().fleet({ name: 'steady' }).group('steady').input());
}

const ESC = '\u001b';
const stripAnsi = (s: string) =>
  s
    .split(ESC)
    .map((part, i) => (i === 0 ? part : part.replace(/^\[[0-9;]*m/, '')))
    .join('');

t.test('the fixture covers every kind of change', async (t) => {
  const plan = everythingPlan();
  t.same(
    plan.fleets.map((f) => [f.fleet, f.action]),
    [
      ['arm-large', 'create'],
      ['drifted', 'create'],
      ['gpu', 'update'],
      ['legacy', 'delete'],
      ['linux-small', 'update'],
      ['quiet', 'noop'],
      ['scaled', 'noop'],
    ],
  );
  t.equal(plan.errored, true);
});

for (const format of ['text', 'markdown', 'json'] as const) {
  t.test(`${format}: every kind of change`, async (t) => {
    t.matchSnapshot(renderPlan(everythingPlan(), { format, color: false }));
  });
  t.test(`${format}: no changes`, async (t) => {
    t.matchSnapshot(renderPlan(noChangesPlan(), { format, color: false }));
  });
}

t.test('text follows the Terraform layout', async (t) => {
  const text = renderPlan(everythingPlan(), { format: 'text', color: false });
  const lines = text.split('\n');
  t.ok(lines.includes('runfleet will perform the following actions:'));
  t.ok(lines.includes('  # fleet.linux-small will be updated in-place'));
  t.ok(lines.includes('  # fleet.gpu must be replaced'));
  t.ok(lines.includes('-/+ fleet "gpu" {'), '-/+ starts at column 0');
  t.ok(lines.includes('  + fleet "arm-large" {'), 'single symbols sit in the 3-char gutter');
  t.ok(lines.includes('  - fleet "legacy" {'));
  t.match(text, /~ provider\.region += "eu-west-1" -> "eu-central-1" {2}# forces replacement/);
  t.match(text, /~ gitlab\.token += \(sensitive value\)\n/);
  t.match(text, /- instance "i-0bbb" {2}# idle_time: idle 45m > idle_time 20m/);
  t.match(text, /- instance "i-0eee" {2}# max_use_count: used 1 of max_use_count 1/);
  t.match(text, /# \(\d+ unchanged attributes hidden\)/);
  t.notMatch(text, /fleet "quiet"/, 'a noop fleet without capacity change is not shown');
  t.ok(lines.includes('Plan: 6 to add, 1 to change, 6 to destroy.'), 'summary');
  t.match(text, /│ Error: cannot reach the local pool directory/);
  t.match(text, /│ Warning: .*no longer exists/);

  // `=` aligned within each run of attributes of the linux-small block.
  const start = lines.indexOf('  ~ fleet "linux-small" {');
  const block = lines.slice(start + 1, lines.indexOf('      ~ capacity {', start));
  const columns = new Set(block.filter((l) => / = /.test(l)).map((l) => l.indexOf(' = ')));
  t.equal(columns.size, 1, `one = column in the block (${[...columns].join(',')})`);
});

t.test('the legend lists only the symbols used', async (t) => {
  const legend = (plan: Plan) => {
    const lines = renderPlan(plan, { format: 'text', color: false }).split('\n');
    const from = lines.indexOf('Fleet actions are indicated with the following symbols:');
    const to = lines.indexOf('', from);
    return lines.slice(from + 1, to);
  };
  t.same(legend(everythingPlan()), [
    '  + create',
    '  ~ update in-place',
    '  - destroy',
    '-/+ destroy and then create replacement',
  ]);
  const createOnly = planFleets(new FakeState().desiredFleet({ name: 'only' }).input());
  t.same(legend(createOnly), ['  + create']);
});

t.test('colour only when asked', async (t) => {
  const plain = renderPlan(everythingPlan(), { format: 'text', color: false });
  const coloured = renderPlan(everythingPlan(), { format: 'text', color: true });
  t.notOk(plain.includes(ESC), 'no escapes without colour');
  t.ok(coloured.includes(`${ESC}[32m+${ESC}[0m fleet "arm-large"`), 'green +');
  t.ok(coloured.includes(`${ESC}[33m~${ESC}[0m`), 'yellow ~');
  t.ok(coloured.includes(`${ESC}[31m-${ESC}[0m fleet "legacy"`), 'red -');
  t.ok(
    coloured.includes(`${ESC}[31m-${ESC}[0m/${ESC}[32m+${ESC}[0m fleet "gpu"`),
    'red - green + for replacement',
  );
  t.ok(coloured.includes(`${ESC}[1m  # fleet.gpu must be replaced${ESC}[0m`), 'bold header');
  t.equal(stripAnsi(coloured), plain, 'colour adds nothing but escapes');
  for (const format of ['markdown', 'json'] as const) {
    t.notOk(
      renderPlan(everythingPlan(), { format, color: true }).includes(ESC),
      `${format} is never coloured`,
    );
  }
});

t.test('secret references never show in any format', async (t) => {
  for (const format of ['text', 'markdown', 'json'] as const) {
    const out = renderPlan(everythingPlan(), { format, color: false });
    t.notMatch(out, /OLD_TOKEN_VAR|NEW_TOKEN_VAR|RUNFLEET_GITLAB_TOKEN/, format);
    t.match(out, /\(sensitive value\)/, `${format} says it is sensitive`);
  }
});

t.test('markdown: summary, one details block per shown fleet, diff markers at column 0', async (t) => {
  const md = renderPlan(everythingPlan(), { format: 'markdown', color: false });
  t.match(md, /^\*\*Plan: 6 to add, 1 to change, 6 to destroy\.\*\*\n/);
  t.equal(md.match(/<details>/g)?.length, 6);
  t.equal(md.match(/```diff/g)?.length, 6);
  t.match(md, /\n! {6}~ docker\.image/, '~ lines are marked ! for the highlighter');
  t.match(md, /\n\+ {2}\+ fleet "arm-large" \{/);
  t.match(md, /- \*\*Error\*\* `PROVIDER_UNREACHABLE` in `fleet\.drifted` \(fleets\/drifted\.yaml line 1\)/);
  t.equal(
    renderPlan(noChangesPlan(), { format: 'markdown', color: false }).trim(),
    '**No changes. Your fleets match the configuration.**',
  );
});

t.test('json: the plan itself, keys sorted, stable', async (t) => {
  const plan = everythingPlan();
  const json = renderPlan(plan, { format: 'json', color: false });
  const parsed = JSON.parse(json) as Plan;
  t.same(parsed.summary, plan.summary);
  t.same(
    parsed.fleets.map((f) => f.fleet),
    plan.fleets.map((f) => f.fleet),
  );
  t.same(Object.keys(parsed), [...Object.keys(parsed)].sort(), 'top-level keys sorted');
  t.same(
    Object.keys(parsed.fleets[0] ?? {}),
    Object.keys(parsed.fleets[0] ?? {}).sort(),
    'fleet keys sorted',
  );
  t.equal(renderPlan(everythingPlan(), { format: 'json', color: false }), json, 'same plan, same bytes');
  const token = parsed.fleets
    .find((f) => f.fleet === 'linux-small')
    ?.changes.find((c) => c.path === 'gitlab.token');
  t.same(token, {
    new: '(sensitive value)',
    old: '(sensitive value)',
    path: 'gitlab.token',
    sensitive: true,
  });
});
