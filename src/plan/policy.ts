/**
 * Which autoscaling policy entry is in force at a moment. Pure: `now` is an argument.
 */
import { Cron } from 'croner';
import { ErrorCode, FleetError } from '../errors.js';
import type { PolicySpec } from '../model/fleet.js';

/**
 * What applies when no entry's periods match `now`: keep no idle capacity and scale only with
 * demand, so a fleet whose schedule has a gap drains to zero instead of keeping stale capacity.
 * `index` is -1 in that case.
 */
export const NO_POLICY: Readonly<PolicySpec> = Object.freeze({
  periods: [],
  timezone: 'UTC',
  idle_count: 0,
  idle_time: '20m',
  scale_factor: 0,
  scale_factor_limit: 0,
  preemptive_mode: false,
});

export interface PolicyInForce {
  policy: PolicySpec;
  /** Position in the fleet's `policy` list, or -1 for `NO_POLICY`. */
  index: number;
}

// Compiling a cron pattern costs ~50 µs; the daemon asks every tick for every fleet, so patterns are
// compiled once per (timezone, expression). Bounded so a long-lived daemon whose fleets keep changing
// cannot grow it without limit.
const MAX_CACHED = 4096;
const compiled = new Map<string, Cron>();

function cronFor(expr: string, timezone: string): Cron {
  const key = `${timezone}\u0000${expr}`;
  let cron = compiled.get(key);
  if (!cron) {
    try {
      cron = new Cron(expr, { timezone });
    } catch (e) {
      throw new FleetError(
        ErrorCode.CONFIG_INVALID,
        `invalid policy period "${expr}": ${(e as Error).message}`,
        {
          hint: 'periods are five-field cron expressions, e.g. "* 8-17 * * mon-fri"',
          cause: e,
        },
      );
    }
    if (compiled.size >= MAX_CACHED) compiled.clear();
    compiled.set(key, cron);
  }
  return cron;
}

// Whether a (timezone, expression) matches the current minute, for the minute last asked about:
// a thousand fleets usually share a handful of schedules, and a match costs ~10 µs.
let matchesMinute = NaN;
const matches = new Map<string, boolean>();

function matchesAt(expr: string, timezone: string, minute: Date): boolean {
  if (minute.getTime() !== matchesMinute) {
    matches.clear();
    matchesMinute = minute.getTime();
  }
  const key = `${timezone}\u0000${expr}`;
  let hit = matches.get(key);
  if (hit === undefined) {
    hit = cronFor(expr, timezone).match(minute);
    matches.set(key, hit);
  }
  return hit;
}

/** True when `minute` (already truncated to the minute) lies in one of the entry's periods. */
function entryMatches(entry: PolicySpec, minute: Date): boolean {
  for (const expr of entry.periods) {
    try {
      if (matchesAt(expr, entry.timezone, minute)) return true;
    } catch (e) {
      if (e instanceof FleetError) throw e;
      throw new FleetError(ErrorCode.CONFIG_INVALID, `cannot read policy timezone "${entry.timezone}"`, {
        hint: 'use an IANA zone name such as UTC or Europe/Berlin',
        cause: e,
      });
    }
  }
  return false;
}

/**
 * The policy entry in force at `now`: as in GitLab Runner, the LAST entry any of whose periods
 * matches the current minute (read in the entry's timezone) wins. When none matches, `NO_POLICY`
 * (idle_count 0, scale_factor 0) with index -1. Throws FleetError(CONFIG_INVALID) for a pattern or
 * timezone croner cannot read.
 */
export function policyAt(policies: PolicySpec[], now: Date): PolicyInForce {
  // Cron patterns here have no seconds field, so croner matches only at second 0 of a minute.
  const minute = new Date(Math.floor(now.getTime() / 60_000) * 60_000);
  for (let i = policies.length - 1; i >= 0; i--) {
    const entry = policies[i] as PolicySpec;
    if (entryMatches(entry, minute)) return { policy: entry, index: i };
  }
  return { policy: NO_POLICY, index: -1 };
}
