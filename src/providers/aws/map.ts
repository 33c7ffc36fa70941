/**
 * Pure mapping from Auto Scaling and EC2 describe results to runfleet's observed model: instance
 * states, the group settings record the planner diffs, and prerequisite/ownership diagnostics.
 */
import type { AutoScalingGroup, Instance as AsgInstance, TagDescription } from '@aws-sdk/client-auto-scaling';
import type { Instance as Ec2Instance, Tag as Ec2Tag } from '@aws-sdk/client-ec2';
import { MANAGED_SUSPENDED_PROCESSES, RUNFLEET_TAG } from './group-settings.js';
import type { Diagnostic } from '../../model/plan.js';
import type { GroupRef, Json, ObservedInstance, ProviderInstanceState } from '../../model/observed.js';

/**
 * Auto Scaling lifecycle → fleeting's state. Standby instances are out of service and not
 * runfleet's to use or remove, so they count as `deleting` (unusable, no action) until an operator
 * returns them. EC2's own state wins when the instance is already going away.
 */
export function instanceState(lifecycle: string | undefined, ec2State?: string): ProviderInstanceState {
  if (ec2State === 'terminated') return 'gone';
  if (ec2State === 'shutting-down' || ec2State === 'stopping' || ec2State === 'stopped') return 'deleting';
  const l = lifecycle ?? '';
  if (l === 'InService') return 'running';
  if (l.startsWith('Pending') || l === 'Quarantined' || l.startsWith('Warmed')) return 'creating';
  if (l === 'Terminated' || l === 'Detached') return 'gone';
  // Terminating*, Detaching, EnteringStandby, Standby and anything newer.
  return 'deleting';
}

export function asgTag(tags: TagDescription[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

export function ec2Tag(tags: Ec2Tag[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

/** One instance of a group, joined with what EC2 knows of it (absent right after launch). */
export function observedInstance(
  member: AsgInstance,
  ec2: Ec2Instance | undefined,
  now: Date,
): ObservedInstance {
  const ec2State = ec2?.State?.Name;
  const details: Record<string, string> = {};
  if (member.AvailabilityZone) details.availability_zone = member.AvailabilityZone;
  if (member.InstanceType ?? ec2?.InstanceType)
    details.instance_type = (member.InstanceType ?? ec2?.InstanceType)!;
  if (member.LifecycleState) details.lifecycle_state = member.LifecycleState;
  if (ec2State) details.ec2_state = ec2State;
  const instance: ObservedInstance = {
    id: member.InstanceId ?? '',
    state: instanceState(member.LifecycleState, ec2State),
    // EC2 may not list an instance the group launched a moment ago; "now" is the best estimate.
    launched_at: (ec2?.LaunchTime ?? now).toISOString(),
    lifecycle: ec2?.InstanceLifecycle === 'spot' ? 'spot' : 'on-demand',
    healthy: member.HealthStatus === 'Healthy' && ec2State !== 'stopped',
    details,
  };
  if (ec2?.PrivateIpAddress) instance.internal_addr = ec2.PrivateIpAddress;
  if (ec2?.PublicIpAddress) instance.external_addr = ec2.PublicIpAddress;
  return instance;
}

/**
 * The group's settings, keyed as `desiredGroupSettings` (src/plan/group-settings.ts) keys them.
 * Absent values are `null`. `suspended_processes` lists only the processes runfleet manages.
 */
export function groupSettings(g: AutoScalingGroup): Record<string, Json> {
  const suspended = new Set((g.SuspendedProcesses ?? []).map((p) => p.ProcessName));
  const mixed = g.MixedInstancesPolicy;
  const lt = mixed?.LaunchTemplate?.LaunchTemplateSpecification ?? g.LaunchTemplate;
  const dist = mixed?.InstancesDistribution;
  const tags: Record<string, Json> = {};
  for (const key of [RUNFLEET_TAG.fleet, RUNFLEET_TAG.lifecycle]) {
    const v = asgTag(g.Tags, key);
    if (v !== undefined) tags[key] = v;
  }
  return {
    min_size: g.MinSize ?? null,
    max_size: g.MaxSize ?? null,
    desired_capacity: g.DesiredCapacity ?? null,
    new_instances_protected_from_scale_in: g.NewInstancesProtectedFromScaleIn ?? false,
    capacity_rebalance: g.CapacityRebalance ?? false,
    suspended_processes: MANAGED_SUSPENDED_PROCESSES.filter((p) => suspended.has(p)),
    tags,
    manager: asgTag(g.Tags, RUNFLEET_TAG.manager) ?? null,
    launch_template_id: lt?.LaunchTemplateId ?? null,
    launch_template_name: lt?.LaunchTemplateName ?? null,
    launch_template_version: lt?.Version ?? null,
    subnets: (g.VPCZoneIdentifier ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .sort(),
    instance_types: (mixed?.LaunchTemplate?.Overrides ?? []).flatMap((o) =>
      o.InstanceType ? [o.InstanceType] : [],
    ),
    on_demand_base_capacity: dist?.OnDemandBaseCapacity ?? null,
    on_demand_percentage_above_base_capacity: dist?.OnDemandPercentageAboveBaseCapacity ?? null,
    spot_allocation_strategy: dist?.SpotAllocationStrategy ?? null,
  };
}

/** Why runfleet must not touch a group: it is tagged for another fleet or another manager. */
export function ownershipConflict(
  ref: GroupRef,
  g: AutoScalingGroup,
  manager: string | undefined,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  const fleetTag = asgTag(g.Tags, RUNFLEET_TAG.fleet);
  if (fleetTag !== undefined && fleetTag !== ref.fleet) {
    out.push({
      severity: 'error',
      code: 'GROUP_OWNED_BY_OTHER_FLEET',
      message: `Auto Scaling group ${ref.name} is tagged ${RUNFLEET_TAG.fleet}=${fleetTag}, not ${ref.fleet}`,
      hint: 'one group backs exactly one fleet: give this fleet its own group, or remove the other fleet first',
    });
  }
  const managerTag = asgTag(g.Tags, RUNFLEET_TAG.manager);
  if (manager !== undefined && managerTag !== undefined && managerTag !== manager) {
    out.push({
      severity: 'error',
      code: 'GROUP_OWNED_BY_OTHER_MANAGER',
      message: `Auto Scaling group ${ref.name} is managed by runfleet manager ${managerTag}, not ${manager}`,
      hint: 'two managers scaling one group fight each other; run this fleet from one manager only',
    });
  }
  return out;
}

/** Prerequisites that settings diffs cannot express. */
export function prerequisiteDiagnostics(
  ref: GroupRef,
  g: AutoScalingGroup,
  policyNames: string[],
): Diagnostic[] {
  const out: Diagnostic[] = [];
  if (policyNames.length > 0) {
    out.push({
      severity: 'error',
      code: 'GROUP_HAS_SCALING_POLICIES',
      message: `Auto Scaling group ${ref.name} has scaling policies attached: ${policyNames.join(', ')}`,
      hint: `runfleet alone decides capacity; delete them (aws autoscaling delete-policy --auto-scaling-group-name ${ref.name} --policy-name NAME)`,
    });
  }
  if (g.Status === 'Delete in progress') {
    out.push({
      severity: 'warning',
      code: 'GROUP_DELETING',
      message: `Auto Scaling group ${ref.name} is being deleted`,
    });
  }
  if ((g.WarmPoolConfiguration ?? undefined) !== undefined) {
    out.push({
      severity: 'warning',
      code: 'GROUP_HAS_WARM_POOL',
      message: `Auto Scaling group ${ref.name} has a warm pool; runfleet does not account for warm instances`,
    });
  }
  return out;
}

export function orphanInstanceDiagnostic(ref: GroupRef, instance: Ec2Instance): Diagnostic {
  const inGroup = ec2Tag(instance.Tags, 'aws:autoscaling:groupName');
  const where = inGroup ? `in group ${inGroup}` : 'outside any Auto Scaling group';
  return {
    severity: 'warning',
    code: 'ORPHAN_INSTANCE',
    message: `instance ${instance.InstanceId} is tagged ${RUNFLEET_TAG.fleet}=${ref.fleet} but is ${where}, not in ${ref.name}`,
    hint: 'runfleet never deletes it; terminate it by hand if it is not needed (aws ec2 terminate-instances)',
  };
}
