/**
 * Durations as fleet files write them (Go's style, as GitLab Runner takes them): numbers with units,
 * largest unit first, e.g. `45s`, `20m`, `1h30m`, `1.5h`, `250ms`. A bare `0` is zero.
 */
import { ErrorCode, FleetError } from '../errors.js';

const UNIT_MS = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const;
type Unit = keyof typeof UNIT_MS;
/** Largest first: each unit may appear once, in this order, so `1h30m` parses and `30m1h` does not. */
const UNIT_ORDER: readonly Unit[] = ['h', 'm', 's', 'ms'];

// `ms` must be tried before `m`, or `250ms` would read as 250m followed by a stray `s`.
const PART = /(\d+(?:\.\d+)?)(ms|h|m|s)/y;

export const DURATION_HINT =
  'write a number and a unit (h, m, s, ms), largest unit first, e.g. 45s, 20m or 1h30m';

/**
 * Parses a duration into milliseconds (rounded to a whole millisecond).
 * @throws FleetError(CONFIG_INVALID) when `s` is not a duration; the message quotes the input.
 */
export function parseDuration(s: string): number {
  const invalid = () =>
    new FleetError(ErrorCode.CONFIG_INVALID, `invalid duration ${JSON.stringify(s)}`, {
      hint: DURATION_HINT,
    });
  if (s === '0') return 0;
  if (s.length === 0) throw invalid();
  let total = 0;
  let lastUnitIndex = -1;
  PART.lastIndex = 0;
  while (PART.lastIndex < s.length) {
    const match = PART.exec(s);
    if (!match) throw invalid();
    const unitIndex = UNIT_ORDER.indexOf(match[2] as Unit);
    if (unitIndex <= lastUnitIndex) throw invalid();
    lastUnitIndex = unitIndex;
    total += Number(match[1]) * UNIT_MS[match[2] as Unit];
  }
  const ms = Math.round(total);
  if (!Number.isSafeInteger(ms)) throw invalid();
  return ms;
}

/**
 * Formats milliseconds the way `parseDuration` reads them, shortest form first: `1h30m`, `45s`,
 * `1s500ms`, `0s`. `parseDuration(formatDuration(ms)) === ms` for every whole, non-negative `ms`.
 * @throws RangeError for negative or non-finite input (a caller bug, not a config error).
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`formatDuration: ${ms} is not a duration`);
  let rest = Math.round(ms);
  if (rest === 0) return '0s';
  let out = '';
  for (const unit of UNIT_ORDER) {
    const n = Math.floor(rest / UNIT_MS[unit]);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * UNIT_MS[unit];
  }
  return out;
}
