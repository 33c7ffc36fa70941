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

/** `aws group runfleet-gpu in eu-west-1`, `local group build`: for plan messages. */
export function describeGroup(fleet: Pick<Fleet, 'name' | 'provider'>): string {
  const ref = groupRefFor(fleet);
  const where = fleet.provider.type === 'aws' ? ` in ${fleet.provider.region}` : '';
  return `${ref.provider} group ${ref.name}${where}`;
}
