/**
 * The Auto Scaling group settings a fleet implies, as plain data, and their diff against what
 * `observe` reports (the AWS provider's `diffGroup`, shown in plans as `group.<key>`). Pure: only
 * keys returned here are compared, so `observe` may report more keys (for display) than a fleet
 * manages.
 */
import type { AwsCreateSpec, AwsProviderSpec, Fleet } from '../../model/fleet.js';
import type { Json, ObservedGroup } from '../../model/observed.js';
import { diffGroupSettings, type GroupDiff } from '../../model/settings-diff.js';

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

/** The settings of an AWS fleet's group; none for fleets of other providers. */
export function desiredGroupSettings(fleet: Fleet, opts: GroupSettingsOptions = {}): Record<string, Json> {
  return fleet.provider.type === 'aws' ? desiredAwsGroupSettings(fleet, fleet.provider, opts) : {};
}

/**
 * The fleet's settings against its observed group; a missing group has every setting added. The
 * manager tag is not diffed here (a group of another manager is refused by `observe` instead).
 */
export function diffAwsGroup(fleet: Fleet, group: ObservedGroup | undefined): GroupDiff {
  const exists = group?.exists === true;
  const diff = diffGroupSettings(desiredGroupSettings(fleet), exists ? group.settings : undefined);
  const spec = fleet.provider;
  if (!exists && spec.type === 'aws' && spec.auto_scaling_group !== undefined) {
    // An adopted group is never created by runfleet: its absence is an error, not drift.
    diff.diagnostics = [
      {
        severity: 'error',
        code: 'GROUP_NOT_FOUND',
        message: `Auto Scaling group ${spec.auto_scaling_group} in ${spec.region}, adopted by fleet "${fleet.name}", does not exist`,
        hint: 'check auto_scaling_group and region, or use a create block to let runfleet own a new group',
      },
    ];
  }
  return diff;
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
