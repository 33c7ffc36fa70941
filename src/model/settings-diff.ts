/**
 * Comparing provider-managed group settings, shared by the providers that manage any (each diffs
 * its own, see `Provider.diffGroup`) and by the planner's spec diff. Pure.
 */
import type { Json } from './observed.js';
import type { AttributeChange, Diagnostic } from './plan.js';

/** A group's settings against what a fleet implies, as `group.<key>` changes. */
export interface GroupDiff {
  changes: AttributeChange[];
  /** Settings that already match (counted into the plan's hidden unchanged attributes). */
  unchanged: number;
  /** What the provider finds wrong with the group for this fleet (e.g. an adopted group missing). */
  diagnostics?: Diagnostic[];
}

export const NO_GROUP_DIFF: GroupDiff = Object.freeze({ changes: [], unchanged: 0 }) as GroupDiff;

/** Deep equality of JSON values; `undefined` object members count as absent. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => jsonEqual(v, bb[i]));
  }
  const ak = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const bk = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return (
    ak.length === bk.length &&
    ak.every((k) => jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  );
}

/**
 * `desired` against what the provider reports, as `group.<key>` changes sorted by key. Only keys
 * the desired side names are compared (a provider may observe more, for display); a missing group
 * (`observed` undefined) has every setting added.
 */
export function diffGroupSettings(
  desired: Record<string, Json>,
  observed: Record<string, Json> | undefined,
): GroupDiff {
  const changes: AttributeChange[] = [];
  let unchanged = 0;
  for (const key of Object.keys(desired).sort()) {
    const want = desired[key];
    const have = observed?.[key];
    if (jsonEqual(want, have)) {
      unchanged++;
      continue;
    }
    const change: AttributeChange = { path: `group.${key}` };
    if (have !== undefined) change.old = have;
    if (want !== undefined) change.new = want;
    changes.push(change);
  }
  return { changes, unchanged };
}
