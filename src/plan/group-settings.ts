/**
 * Provider-managed group settings a fleet implies, as plain data. Pure: the planner diffs these
 * against `ObservedGroup.settings`; only keys returned here are compared, so a provider may observe
 * more keys (for display) than a fleet manages.
 */
import type { AwsCreateSpec, AwsProviderSpec, Fleet } from '../model/fleet.js';
import type { Json } from '../model/observed.js';

/**
 * Tags runfleet puts on the Auto Scaling groups it manages (and, propagated at launch, on their
 * instances). `lifecycle` tells `deleteGroup` whether the group may be deleted (`owned`) or only
 * released (`adopted`) even when the fleet file is gone.
 */
export const RUNFLEET_TAG = {
  fleet: 'runfleet:fleet',
  manager: 'runfleet:manager',
  lifecycle: 'runfleet:lifecycle',
} as const;

/** The only Auto Scaling process runfleet suspends; others are the operator's business. */
export const MANAGED_SUSPENDED_PROCESSES = ['AZRebalance'] as const;

/** Spot allocation when a mixed group does not name one: AWS's recommended strategy. */
export const DEFAULT_SPOT_ALLOCATION_STRATEGY = 'price-capacity-optimized';

export interface GroupSettingsOptions {
  /**
   * The manager id the AWS provider tags groups with (`runfleet:manager`). When omitted, the
   * `manager` setting is not diffed (the provider still refuses groups of another manager).
   */
  manager?: string;
}

export function desiredGroupSettings(fleet: Fleet, opts: GroupSettingsOptions = {}): Record<string, Json> {
  switch (fleet.provider.type) {
    case 'local':
    case 'static':
      return {};
    case 'aws':
      return desiredAwsGroupSettings(fleet, fleet.provider, opts);
  }
}

/**
 * The AWS settings, keyed as the AWS provider's `observe` reports them:
 * - every group: `min_size` 0 (runfleet alone decides capacity), `max_size` = `max_instances` (the
 *   ASG ceiling enforces the fleet's), `new_instances_protected_from_scale_in` true,
 *   `capacity_rebalance` false, `suspended_processes` ["AZRebalance"] (only the processes runfleet
 *   manages are observed), `tags` (fleet + lifecycle) and, with a manager id, `manager`;
 * - owned groups (`create` block) also: launch template id or name and version, `subnets`
 *   (sorted), `instance_types` (in priority order, [] for a plain launch template) and, for a
 *   mixed instances policy, the on-demand/spot distribution with runfleet's defaults filled in.
 */
function desiredAwsGroupSettings(
  fleet: Fleet,
  spec: AwsProviderSpec,
  opts: GroupSettingsOptions,
): Record<string, Json> {
  const settings: Record<string, Json> = {
    min_size: 0,
    max_size: fleet.max_instances,
    new_instances_protected_from_scale_in: true,
    capacity_rebalance: false,
    suspended_processes: [...MANAGED_SUSPENDED_PROCESSES],
    tags: {
      [RUNFLEET_TAG.fleet]: fleet.name,
      [RUNFLEET_TAG.lifecycle]: spec.create ? 'owned' : 'adopted',
    },
  };
  if (opts.manager !== undefined) settings.manager = opts.manager;
  if (spec.create) Object.assign(settings, desiredOwnedSettings(spec.create));
  return settings;
}

/** True when an owned group needs a mixed instances policy rather than a plain launch template. */
export function usesMixedInstances(create: AwsCreateSpec): boolean {
  return (
    (create.instance_types?.length ?? 0) > 0 ||
    create.on_demand_base_capacity !== undefined ||
    create.on_demand_percentage_above_base_capacity !== undefined ||
    create.spot_allocation_strategy !== undefined
  );
}

function desiredOwnedSettings(create: AwsCreateSpec): Record<string, Json> {
  const lt = create.launch_template;
  const settings: Record<string, Json> = {
    launch_template_version: lt.version,
    subnets: [...create.subnets].sort(),
    instance_types: [...(create.instance_types ?? [])],
  };
  // A template may be named by id or by name; only the form the fleet uses is compared, since
  // AWS reports both.
  if (lt.id !== undefined) settings.launch_template_id = lt.id;
  else if (lt.name !== undefined) settings.launch_template_name = lt.name;
  if (usesMixedInstances(create)) {
    settings.on_demand_base_capacity = create.on_demand_base_capacity ?? 0;
    settings.on_demand_percentage_above_base_capacity =
      create.on_demand_percentage_above_base_capacity ?? 100;
    settings.spot_allocation_strategy = create.spot_allocation_strategy ?? DEFAULT_SPOT_ALLOCATION_STRATEGY;
  }
  return settings;
}
