import t from 'tap';
import { isFleetError } from '../../src/errors.js';
import { NO_POLICY, policyAt } from '../../src/plan/policy.js';
import { policySpec } from '../helpers/fake-state.js';

const always = policySpec({ idle_count: 1 });
const berlinOffice = policySpec({
  periods: ['* 8-17 * * mon-fri'],
  timezone: 'Europe/Berlin',
  idle_count: 5,
});
const nightUtc = policySpec({ periods: ['* 0-5 * * *'], timezone: 'UTC', idle_count: 0 });

t.test('the last matching entry wins', async (t) => {
  const cases: { name: string; policies: ReturnType<typeof policySpec>[]; now: string; index: number }[] = [
    // Friday 2026-03-27 10:30 in Berlin (CET, UTC+1).
    {
      name: 'office hours: later entry wins',
      policies: [always, berlinOffice],
      now: '2026-03-27T09:30:00Z',
      index: 1,
    },
    {
      name: 'weekend: falls back to the earlier entry',
      policies: [always, berlinOffice],
      now: '2026-03-28T09:30:00Z',
      index: 0,
    },
    {
      name: 'order matters: a later always-on entry wins',
      policies: [berlinOffice, always],
      now: '2026-03-27T09:30:00Z',
      index: 1,
    },
    {
      name: 'first of two matches loses',
      policies: [always, nightUtc, berlinOffice],
      now: '2026-03-27T03:00:00Z',
      index: 1,
    },
    { name: 'nothing matches', policies: [nightUtc], now: '2026-03-27T12:00:00Z', index: -1 },
    { name: 'empty list', policies: [], now: '2026-03-27T12:00:00Z', index: -1 },
  ];
  for (const c of cases) {
    const got = policyAt(c.policies, new Date(c.now));
    t.equal(got.index, c.index, c.name);
    t.equal(got.policy, c.index >= 0 ? c.policies[c.index] : NO_POLICY, `${c.name}: policy object`);
  }
});

t.test('the default when nothing matches keeps no idle capacity', async (t) => {
  t.equal(NO_POLICY.idle_count, 0);
  t.equal(NO_POLICY.scale_factor, 0);
});

t.test('periods are read in the entry timezone', async (t) => {
  const tokyo = policySpec({ periods: ['* 9 * * *'], timezone: 'Asia/Tokyo' });
  const utc = policySpec({ periods: ['* 9 * * *'], timezone: 'UTC' });
  const at = new Date('2026-06-01T00:15:00Z'); // 09:15 in Tokyo
  t.equal(policyAt([tokyo], at).index, 0);
  t.equal(policyAt([utc], at).index, -1);
});

t.test('Europe/Berlin across the DST change on 2026-03-29', async (t) => {
  const eight = policySpec({ periods: ['* 8 * * *'], timezone: 'Europe/Berlin' });
  // Saturday, CET (UTC+1): 08:30 local is 07:30Z.
  t.equal(policyAt([eight], new Date('2026-03-28T07:30:00Z')).index, 0, 'CET 08:30');
  t.equal(policyAt([eight], new Date('2026-03-28T06:30:00Z')).index, -1, 'CET 07:30');
  // Sunday, CEST (UTC+2) from 01:00Z: 08:30 local is 06:30Z.
  t.equal(policyAt([eight], new Date('2026-03-29T06:30:00Z')).index, 0, 'CEST 08:30');
  t.equal(policyAt([eight], new Date('2026-03-29T07:30:00Z')).index, -1, 'CEST 09:30');
  // 02:xx local does not exist that night: 01:30Z is already 03:30 CEST.
  const two = policySpec({ periods: ['* 2 * * *'], timezone: 'Europe/Berlin' });
  t.equal(policyAt([two], new Date('2026-03-29T00:59:00Z')).index, -1, '01:59 CET');
  t.equal(policyAt([two], new Date('2026-03-29T01:00:00Z')).index, -1, '03:00 CEST');
  t.equal(policyAt([two], new Date('2026-03-30T00:30:00Z')).index, 0, 'Monday 02:30 CEST');
});

t.test('seconds within the minute do not matter', async (t) => {
  const p = policySpec({ periods: ['30 12 * * *'] });
  t.equal(policyAt([p], new Date('2026-03-27T12:30:00.000Z')).index, 0);
  t.equal(policyAt([p], new Date('2026-03-27T12:30:59.999Z')).index, 0);
  t.equal(policyAt([p], new Date('2026-03-27T12:31:00.000Z')).index, -1);
});

t.test('an unreadable period or timezone is a config error', async (t) => {
  const badCron = policySpec({ periods: ['every day'] });
  const badZone = policySpec({ timezone: 'Mars/Olympus' });
  for (const [name, p] of [
    ['cron', badCron],
    ['zone', badZone],
  ] as const) {
    try {
      policyAt([p], new Date('2026-03-27T12:00:00Z'));
      t.fail(`${name}: expected a throw`);
    } catch (e) {
      t.ok(isFleetError(e) && e.code === 'CONFIG_INVALID', `${name}: CONFIG_INVALID`);
      t.ok(isFleetError(e) && e.hint, `${name}: has a hint`);
    }
  }
});
