/**
 * Attribute-level diff of two fleet specs, flattened to dotted paths the way plan output shows them
 * (`docker.image`, `policy[0].idle_count`). Pure.
 */
import type { Fleet } from '../model/fleet.js';
import type { AttributeChange } from '../model/plan.js';
import { jsonEqual } from '../model/settings-diff.js';

/** Changing one of these moves the fleet to another provider group: the fleet must be replaced. */
export const REPLACEMENT_PATHS: ReadonlySet<string> = new Set([
  'provider.type',
  'provider.region',
  'provider.auto_scaling_group',
]);

/** Leaves holding secret references: shown as `(sensitive value)`, compared whole. */
export const SENSITIVE_PATHS: ReadonlySet<string> = new Set([
  'gitlab.token',
  'cache.s3.access_key',
  'cache.s3.secret_key',
]);

export interface SpecDiff {
  changes: AttributeChange[];
  /** Leaf attributes equal on both sides. */
  unchanged: number;
}

/**
 * Flattens a spec into `path -> leaf value`. Objects are walked with keys sorted, arrays of objects
 * by index (`policy[0]`); arrays of scalars (`periods`, `volumes`) and sensitive paths are single
 * leaves, so a list edit reads as one change. Undefined fields are left out.
 */
export function flattenSpec(spec: unknown): Map<string, unknown> {
  const leaves = new Map<string, unknown>();
  walk(spec, '', leaves);
  return leaves;
}

function walk(value: unknown, path: string, leaves: Map<string, unknown>): void {
  if (value === undefined) return;
  if (path !== '' && (SENSITIVE_PATHS.has(path) || isLeaf(value))) {
    leaves.set(path, value);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => walk(item, `${path}[${i}]`, leaves));
    return;
  }
  const obj = value as Record<string, unknown>;
  for (const key of Object.keys(obj).sort()) walk(obj[key], path === '' ? key : `${path}.${key}`, leaves);
}

/** `gitlab` for `gitlab.token`: the objects on the way to a sensitive path. */
const SENSITIVE_PREFIXES: ReadonlySet<string> = new Set(
  [...SENSITIVE_PATHS].flatMap((p) => p.split('.').map((_, i, parts) => parts.slice(0, i + 1).join('.'))),
);

/**
 * The number of leaves `flattenSpec` would produce, without building their paths: a path is only
 * tracked (`string`) along the way to a sensitive path, elsewhere it is `null`.
 */
function countLeaves(value: unknown, path: string | null, root = false): number {
  if (value === undefined) return 0;
  if (!root && ((path !== null && SENSITIVE_PATHS.has(path)) || isLeaf(value))) return 1;
  let n = 0;
  if (Array.isArray(value)) {
    for (const item of value) n += countLeaves(item, null);
    return n;
  }
  const obj = value as Record<string, unknown>;
  for (const key in obj) {
    const child = root ? key : path !== null && SENSITIVE_PREFIXES.has(path) ? `${path}.${key}` : null;
    n += countLeaves(obj[key], child);
  }
  return n;
}

function isLeaf(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return true;
  if (Array.isArray(value))
    return value.length === 0 || value.every((v) => v === null || typeof v !== 'object');
  return Object.keys(value).length === 0;
}

/** Structural equality for JSON-like values (key order ignored). */
function changeAt(path: string, oldValue: unknown, newValue: unknown): AttributeChange {
  const change: AttributeChange = { path };
  if (oldValue !== undefined) change.old = oldValue;
  if (newValue !== undefined) change.new = newValue;
  if (SENSITIVE_PATHS.has(path)) change.sensitive = true;
  return change;
}

/**
 * Changes from `before` to `after`, sorted by path. Either side may be undefined: a created fleet
 * has every attribute added, a deleted one every attribute removed. Changes to `REPLACEMENT_PATHS`
 * of a fleet present on both sides are marked `forcesReplacement`.
 */
export function diffSpecs(before: Fleet | undefined, after: Fleet | undefined): SpecDiff {
  // Most fleets are unchanged on most plans: compare first, and only count leaves, without building
  // a path string per attribute.
  if (before && after && jsonEqual(before, after))
    return { changes: [], unchanged: countLeaves(after, '', true) };
  const oldLeaves = before ? flattenSpec(before) : new Map<string, unknown>();
  const newLeaves = after ? flattenSpec(after) : new Map<string, unknown>();
  const changes: AttributeChange[] = [];
  let unchanged = 0;
  for (const [path, oldValue] of oldLeaves) {
    const newValue = newLeaves.get(path);
    if (jsonEqual(oldValue, newValue)) unchanged++;
    else changes.push(changeAt(path, oldValue, newValue));
  }
  for (const [path, newValue] of newLeaves) {
    if (!oldLeaves.has(path)) changes.push(changeAt(path, undefined, newValue));
  }
  // Any edit of these, an added or dropped field included (adopting a group by name, switching
  // provider), points the fleet at another group.
  if (before && after) {
    for (const c of changes) if (REPLACEMENT_PATHS.has(c.path)) c.forcesReplacement = true;
  }
  changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { changes, unchanged };
}
