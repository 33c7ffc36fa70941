/**
 * Provider-managed group settings a fleet implies, as plain data. Pure: the planner diffs these
 * against `ObservedGroup.settings`; only keys returned here are compared.
 */
import type { Fleet } from '../model/fleet.js';
import type { Json } from '../model/observed.js';

export function desiredGroupSettings(fleet: Fleet): Record<string, Json> {
  switch (fleet.provider.type) {
    case 'local':
    case 'static':
      return {};
    case 'aws':
      // Filled in by the AWS provider work (issue 3).
      return {};
  }
}
