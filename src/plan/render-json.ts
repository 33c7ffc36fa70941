/**
 * JSON rendering: the plan itself, pretty-printed with object keys sorted at every level so equal
 * plans print byte-identical. Sensitive change values are masked like the text output. Pure.
 */
import type { Plan } from '../model/plan.js';
import { SENSITIVE } from './render-blocks.js';

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(obj)
        .sort()
        .filter((k) => obj[k] !== undefined)
        .map((k) => [k, sortKeys(obj[k])]),
    );
  }
  return value;
}

export function renderJson(plan: Plan): string {
  const masked: Plan = {
    ...plan,
    fleets: plan.fleets.map((fp) => ({
      ...fp,
      changes: fp.changes.map((c) =>
        c.sensitive
          ? {
              ...c,
              ...(c.old !== undefined ? { old: SENSITIVE } : {}),
              ...(c.new !== undefined ? { new: SENSITIVE } : {}),
            }
          : c,
      ),
    })),
  };
  return JSON.stringify(sortKeys(masked), null, 2) + '\n';
}
