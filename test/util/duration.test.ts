import t from 'tap';
import { isFleetError } from '../../src/errors.js';
import { formatDuration, parseDuration } from '../../src/util/duration.js';

t.test('parses Go-style durations into milliseconds', async (t) => {
  const cases: [string, number][] = [
    ['45s', 45_000],
    ['20m', 1_200_000],
    ['1h30m', 5_400_000],
    ['1h', 3_600_000],
    ['250ms', 250],
    ['1m30s', 90_000],
    ['1s500ms', 1_500],
    ['1.5h', 5_400_000],
    ['0.5s', 500],
    ['2h0m5s', 7_205_000],
    ['0', 0],
    ['0s', 0],
  ];
  for (const [text, ms] of cases) t.equal(parseDuration(text), ms, text);
});

t.test('refuses anything else with a CONFIG_INVALID FleetError and a hint', async (t) => {
  for (const bad of [
    '',
    '20',
    'm',
    '20 m',
    ' 20m',
    '20m ',
    '-5s',
    '5d',
    '1m1h',
    '20m20m',
    '1..5s',
    '1e3s',
    'ms',
    '10 minutes',
    '1h30',
  ]) {
    let thrown: unknown;
    try {
      parseDuration(bad);
    } catch (e) {
      thrown = e;
    }
    t.ok(isFleetError(thrown), `${JSON.stringify(bad)} throws a FleetError`);
    if (isFleetError(thrown)) {
      t.equal(thrown.code, 'CONFIG_INVALID');
      t.equal(thrown.message, `invalid duration ${JSON.stringify(bad)}`);
      t.match(thrown.hint, /45s, 20m or 1h30m/);
    }
  }
});

t.test('formats milliseconds in the shortest form parseDuration reads back', async (t) => {
  const cases: [number, string][] = [
    [0, '0s'],
    [45_000, '45s'],
    [1_200_000, '20m'],
    [5_400_000, '1h30m'],
    [1_500, '1s500ms'],
    [86_400_000, '24h'],
    [3_600_001, '1h1ms'],
  ];
  for (const [ms, text] of cases) t.equal(formatDuration(ms), text, String(ms));
  for (const ms of [0, 1, 999, 1000, 61_001, 3_599_999, 7_205_000, 123_456_789]) {
    t.equal(parseDuration(formatDuration(ms)), ms, `round trip ${ms}`);
  }
  t.throws(() => formatDuration(-1), RangeError);
  t.throws(() => formatDuration(Number.NaN), RangeError);
});
