import type { Fleet } from './fleet.js';
import type { GroupRef } from './observed.js';

/** The provider group that backs a fleet. Pure. */
export function groupRefFor(fleet: Pick<Fleet, 'name' | 'provider'>): GroupRef {
  const p = fleet.provider;
  if (p.type === 'aws') {
    return { fleet: fleet.name, provider: 'aws', name: p.auto_scaling_group ?? `runfleet-${fleet.name}` };
  }
  return { fleet: fleet.name, provider: p.type, name: fleet.name };
}
