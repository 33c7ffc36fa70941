/**
 * `[runners.autoscaler]` -> the fleet's scaling fields, `policy`, `scale_throttle` and `connector`.
 * Key names and defaults are GitLab Runner's (common/config.go AutoscalerConfig, ConnectorConfig,
 * AutoscalerPolicyConfig). Only fields the fleet schema has are written; the plugin is converted in
 * convert-provider.ts, connector_config in convert-connector.ts.
 */
import {
  carried,
  differs,
  notCarried,
  reportLeftovers,
  type FleetObject,
  type RunnerContext,
} from './context.js';
import { convertConnector } from './convert-connector.js';
import { convertGoDuration } from './go-duration.js';
import type { Section } from './table.js';

/** Autoscaler keys runfleet has no field for, and why. */
const AUTOSCALER_NOT_CARRIED: Record<string, string> = {
  instance_acquire_timeout:
    'runfleet has no acquire timeout: a job waits as pending demand while the fleet scales up',
  update_interval:
    'runfleet observes providers every `runfleet watch --interval` (default 1m); a daemon flag, not a fleet field',
  update_interval_when_expecting:
    'runfleet observes every 2s while instances are changing; this is not configurable',
  deletion_retry_interval: 'runfleet retries deletions on its next pass; not configurable',
  shutdown_deletion_interval: 'not configurable in runfleet',
  shutdown_deletion_retries: 'not configurable in runfleet',
  reservation_throttling: 'runfleet never lets reservations pin idle capacity; not configurable',
  log_internal_ip: "runfleet's logs always name the instance, never its addresses",
  log_external_ip: "runfleet's logs always name the instance, never its addresses",
  vm_isolation: 'runfleet has no nested VM isolation (nesting); jobs run on the instance itself',
};
const BUCKETS = /_buckets$/;

export function convertAutoscaler(ctx: RunnerContext, autoscaler: Section): void {
  const { fleet } = ctx;
  const cap = autoscaler.integer('capacity_per_instance');
  if (cap !== undefined && cap >= 1) {
    fleet.capacity_per_instance = cap;
    carried(ctx, autoscaler, 'capacity_per_instance', 'capacity_per_instance');
  } else if (cap !== undefined) {
    // GitLab treats 0 (omitted) as 1.
    differs(
      ctx,
      autoscaler.setting('capacity_per_instance'),
      `${cap} means 1 in GitLab; runfleet's default is 1`,
    );
  }
  const max = autoscaler.integer('max_instances');
  if (max !== undefined && max >= 1) {
    fleet.max_instances = max;
    carried(ctx, autoscaler, 'max_instances', 'max_instances');
  } else {
    ctx.blockers.push(
      autoscaler.problem(
        max === undefined ? undefined : 'max_instances',
        `${autoscaler.setting('max_instances')} is ${max ?? 'unset'}, which GitLab reads as unlimited; runfleet needs an upper bound`,
      ) + ' (set max_instances in config.toml, e.g. to the group’s max size, and import again)',
    );
  }
  const useCount = autoscaler.integer('max_use_count');
  if (useCount !== undefined && useCount >= 0) {
    fleet.max_use_count = useCount;
    carried(ctx, autoscaler, 'max_use_count', 'max_use_count');
  }
  const ready = autoscaler.string('instance_ready_command');
  if (ready !== undefined && ready !== '') {
    fleet.instance_ready_command = ready;
    carried(ctx, autoscaler, 'instance_ready_command', 'instance_ready_command');
  }
  const del = autoscaler.boolean('delete_instances_on_shutdown');
  if (del !== undefined) {
    fleet.delete_instances_on_shutdown = del;
    carried(ctx, autoscaler, 'delete_instances_on_shutdown', 'delete_instances_on_shutdown');
  }
  convertThrottle(ctx, autoscaler);
  convertPolicies(ctx, autoscaler);
  const connector = autoscaler.sub('connector_config');
  if (connector) convertConnector(ctx, connector);

  const failure = autoscaler.integer('failure_threshold');
  if (failure !== undefined && failure !== 3 && failure !== 0) {
    notCarried(
      ctx,
      autoscaler.setting('failure_threshold'),
      'runfleet replaces an instance after 3 failed health checks; not configurable',
    );
  }
  // Reported whether set or not: GitLab's default is off, runfleet's state store is always on.
  const state = autoscaler.sub('state_storage');
  for (const key of ['enabled', 'dir', 'keep_instance_with_acquisitions']) state?.raw(key);
  differs(
    ctx,
    autoscaler.setting('state_storage'),
    'always on in runfleet (the state store, --state): instances, use counts and health survive a restart',
  );
  if (state) reportLeftovers(ctx, state);
  reportLeftovers(ctx, autoscaler, (key) =>
    BUCKETS.test(key) ? "runfleet's metric buckets are fixed" : AUTOSCALER_NOT_CARRIED[key],
  );
}

function convertThrottle(ctx: RunnerContext, autoscaler: Section): void {
  const throttle = autoscaler.sub('scale_throttle');
  if (!throttle) return;
  const out: FleetObject = {};
  // GitLab's zero values mean "use the default" (limit 100/s, burst max_instances), as runfleet's absence does.
  const limit = throttle.number('limit');
  if (limit !== undefined && limit > 0) {
    out.limit = limit;
    carried(ctx, throttle, 'limit', 'scale_throttle.limit');
  }
  const burst = throttle.integer('burst');
  if (burst !== undefined && burst >= 1) {
    out.burst = burst;
    carried(ctx, throttle, 'burst', 'scale_throttle.burst');
  }
  if (Object.keys(out).length > 0) ctx.fleet.scale_throttle = out;
  reportLeftovers(ctx, throttle);
}

function convertPolicies(ctx: RunnerContext, autoscaler: Section): void {
  const policies = autoscaler.subs('policy');
  if (policies.length === 0) return;
  let idleNoted = false;
  ctx.fleet.policy = policies.map((p, i) => {
    const out: FleetObject = {};
    const field = (key: string) => `policy[${i}].${key}`;
    const periods = p.strings('periods');
    if (periods !== undefined && periods.length > 0) {
      out.periods = periods;
      carried(ctx, p, 'periods', field('periods'));
    }
    const tz = p.string('timezone');
    if (tz !== undefined && tz !== '') {
      out.timezone = tz;
      carried(ctx, p, 'timezone', field('timezone'));
    } else if (periods !== undefined) {
      differs(
        ctx,
        p.setting('timezone'),
        "unset: GitLab reads periods in the manager's local time zone, runfleet in UTC; set timezone if they differ",
      );
    }
    const idle = p.integer('idle_count');
    if (idle !== undefined && idle >= 0) {
      // runfleet refuses an idle_count the fleet can never hold; GitLab could not reach it either.
      const slots =
        ((ctx.fleet.max_instances as number | undefined) ?? Infinity) *
        ((ctx.fleet.capacity_per_instance as number | undefined) ?? 1);
      out.idle_count = Math.min(idle, slots);
      carried(
        ctx,
        p,
        'idle_count',
        field('idle_count'),
        idle > slots
          ? `${idle} lowered to max_instances × capacity_per_instance = ${slots} slots`
          : undefined,
      );
      if (!idleNoted) {
        idleNoted = true;
        differs(
          ctx,
          p.setting('idle_count'),
          'counts idle job slots, as in GitLab (not instances): slots / capacity_per_instance instances are kept',
        );
      }
    }
    const idleTime = p.raw('idle_time');
    if (idleTime !== undefined) {
      const d = convertGoDuration(idleTime);
      if (d === undefined)
        ctx.blockers.push(
          p.problem('idle_time', `${p.setting('idle_time')} is not a duration such as "20m0s"`),
        );
      else {
        out.idle_time = d.text;
        carried(ctx, p, 'idle_time', field('idle_time'), d.lossy);
      }
    }
    const factor = p.number('scale_factor');
    if (factor !== undefined && factor >= 0) {
      out.scale_factor = factor;
      carried(ctx, p, 'scale_factor', field('scale_factor'));
    }
    const limit = p.integer('scale_factor_limit');
    if (limit !== undefined && limit >= 0) {
      out.scale_factor_limit = limit;
      carried(ctx, p, 'scale_factor_limit', field('scale_factor_limit'));
    }
    const preemptive = p.boolean('preemptive_mode');
    if (preemptive !== undefined) {
      out.preemptive_mode = preemptive;
      carried(ctx, p, 'preemptive_mode', field('preemptive_mode'));
    }
    reportLeftovers(ctx, p);
    return out;
  });
}
