/**
 * Policy periods: 5-field cron expressions (minute hour day month weekday) read in an IANA zone,
 * through croner. Validation and the planner's "which policy is in force" use the same options here.
 */
import { Cron } from 'croner';

/**
 * A croner schedule for one period, never started (no timers): use `.match(date)` to ask whether a
 * minute is inside the period.
 * @throws Error (croner's) when the expression or zone is invalid.
 */
export function periodCron(expression: string, timezone: string): Cron {
  return new Cron(expression, { timezone, mode: '5-part', paused: true });
}

/** True when `timezone` is an IANA zone name this runtime knows (`UTC`, `Europe/Berlin`, ...). */
export function isKnownTimeZone(timezone: string): boolean {
  if (timezone.trim() === '' || /^[+-]/.test(timezone)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

/** Why `expression` is not a valid period, or undefined when it is. */
export function periodProblem(expression: string, timezone: string): string | undefined {
  const fields = expression.trim().split(/\s+/).length;
  if (!expression.trim().startsWith('@') && fields !== 5) return `it has ${fields} fields, not 5`;
  try {
    const cron = periodCron(expression, timezone);
    // An expression like `0 0 31 2 *` parses but never fires; that is a mistake, not a schedule.
    if (!cron.nextRun(new Date(Date.UTC(2000, 0, 1)))) return 'never matches any date';
    return undefined;
  } catch (e) {
    return (e instanceof Error ? e.message : String(e)).replace(/^CronPattern: /, '');
  }
}
