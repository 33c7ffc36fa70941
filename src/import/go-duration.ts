/**
 * GitLab Runner reads durations with Go's time.ParseDuration (`20m0s`, `1h30m`, `1.5h`, `300ms`,
 * `10us`), or as an integer of nanoseconds (how a TOML integer decodes into time.Duration).
 * runfleet's fleet files take whole milliseconds in `h m s ms`, largest unit first: this converts.
 */
import { formatDuration } from '../util/duration.js';

const NS_PER_UNIT: Record<string, number> = {
  ns: 1,
  us: 1e3,
  µs: 1e3,
  μs: 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/** Nanoseconds of a Go duration string or integer; undefined when it is not one. */
export function goDurationNs(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) ? value : undefined;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value !== 'string') return undefined;
  let s = value.trim();
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    sign = s.startsWith('-') ? -1 : 1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') return undefined;
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < s.length) {
    const m = PART.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * (NS_PER_UNIT[m[2] ?? ''] ?? NaN);
  }
  return Number.isFinite(total) ? sign * total : undefined;
}

export interface ConvertedDuration {
  /** As a fleet file writes it, e.g. `20m`. */
  text: string;
  /** Set when the value had to change: below a millisecond, or negative. */
  lossy?: string;
}

/** A Go duration as runfleet writes it; undefined when `value` is not a Go duration. */
export function convertGoDuration(value: unknown): ConvertedDuration | undefined {
  const ns = goDurationNs(value);
  if (ns === undefined) return undefined;
  if (ns < 0) return { text: '0s', lossy: 'negative durations mean 0 in runfleet' };
  const ms = Math.round(ns / 1e6);
  const text = formatDuration(ms);
  return ms * 1e6 === ns ? { text } : { text, lossy: `rounded to whole milliseconds (${text})` };
}
