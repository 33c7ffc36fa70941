/** What each converter writes into while it reads one runner: the fleet object and the report. */
import type { RunnerReport } from './report.js';
import type { Section } from './table.js';

export type FleetObject = Record<string, unknown>;

export interface RunnerContext {
  fleet: FleetObject;
  report: RunnerReport;
  /** Reasons the runner cannot be imported (each with file:line:col where a setting is at fault). */
  blockers: string[];
}

/** Records `section.key` -> `field` as carried over. */
export function carried(
  ctx: RunnerContext,
  section: Section,
  key: string,
  field: string,
  note?: string,
): void {
  const at = section.problem(key, '').replace(/: $/, '');
  ctx.report.carried.push({ setting: section.setting(key), field, at, ...(note ? { note } : {}) });
}

type Kind = 'string' | 'integer' | 'number' | 'boolean' | 'strings';
interface KindValue {
  string: string;
  integer: number;
  number: number;
  boolean: boolean;
  strings: string[];
}

/**
 * Reads `section.key` as `kind` (a type error is the Section's) and, when it is set (neither absent
 * nor `''`) and `accept` takes it, writes it to `out[field]` and records it as carried over to `path`
 * (default: `field`). Returns what was read, taken or not, so a caller can report a refused value
 * in its own words.
 */
export function carry<K extends Kind>(
  ctx: RunnerContext,
  section: Section,
  key: string,
  kind: K,
  out: FleetObject,
  field: string,
  path: string = field,
  accept: (v: KindValue[K]) => boolean = () => true,
): KindValue[K] | undefined {
  const v = section[kind](key) as KindValue[K] | undefined;
  if (v === undefined || v === '' || !accept(v)) return v;
  out[field] = v;
  carried(ctx, section, key, path);
  return v;
}

export function notCarried(ctx: RunnerContext, setting: string, why: string): void {
  ctx.report.notCarried.push({ setting, why });
}

export function differs(ctx: RunnerContext, setting: string, how: string): void {
  ctx.report.differs.push({ setting, how });
}

/**
 * Every key of `section` nobody read is reported as not carried over, with `why` (a function of the
 * key, or the generic reason). Sub-tables are reported whole: `[runners.docker.tmpfs]`, not its keys.
 */
export function reportLeftovers(
  ctx: RunnerContext,
  section: Section,
  why: (key: string) => string | undefined = () => undefined,
): void {
  for (const key of section.leftover()) {
    notCarried(ctx, section.setting(key), why(key) ?? 'the fleet schema has no such setting');
  }
}
