/**
 * `[runners.autoscaler]` -> the fleet's scaling fields, `policy`, `scale_throttle` and `connector`.
 * Key names and defaults are GitLab Runner's (common/config.go AutoscalerConfig, ConnectorConfig,
 * AutoscalerPolicyConfig). Only fields the fleet schema has are written; the plugin is converted in
 * convert-provider.ts, connector_config in convert-connector.ts.
 */
import {
  carried,
  carry,
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
  const cap = carry(
    ctx,
    autoscaler,
    'capacity_per_instance',
    'integer',
    fleet,
    'capacity_per_instance',
    undefined,
    (n) => n >= 1,
  );
  if (cap !== undefined && cap < 1) {
    // GitLab treats 0 (omitted) as 1.
    differs(
      ctx,
      autoscaler.setting('capacity_per_instance'),
      `${cap} means 1 in GitLab; runfleet's default is 1`,
    );
  }
  const max = carry(
    ctx,
    autoscaler,
    'max_instances',
    'integer',
    fleet,
    'max_instances',
    undefined,
    (n) => n >= 1,
  );
  if (max === undefined || max < 1) {
    ctx.blockers.push(
      autoscaler.problem(
        max === undefined ? undefined : 'max_instances',
        `${autoscaler.setting('max_instances')} is ${max ?? 'unset'}, which GitLab reads as unlimited; runfleet needs an upper bound`,
      ) + ' (set max_instances in config.toml, e.g. to the group’s max size, and import again)',
    );
  }
  carry(ctx, autoscaler, 'max_use_count', 'integer', fleet, 'max_use_count', undefined, (n) => n >= 0);
  carry(ctx, autoscaler, 'instance_ready_command', 'string', fleet, 'instance_ready_command');
  carry(ctx, autoscaler, 'delete_instances_on_shutdown', 'boolean', fleet, 'delete_instances_on_shutdown');
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
  carry(ctx, throttle, 'limit', 'number', out, 'limit', 'scale_throttle.limit', (n) => n > 0);
  carry(ctx, throttle, 'burst', 'integer', out, 'burst', 'scale_throttle.burst', (n) => n >= 1);
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
    const periods = carry(
      ctx,
      p,
      'periods',
      'strings',
      out,
      'periods',
      field('periods'),
      (l) => l.length > 0,
    );
    const tz = carry(ctx, p, 'timezone', 'string', out, 'timezone', field('timezone'));
    if ((tz === undefined || tz === '') && periods !== undefined) {
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
    carry(ctx, p, 'scale_factor', 'number', out, 'scale_factor', field('scale_factor'), (n) => n >= 0);
    const limitPath = field('scale_factor_limit');
    carry(ctx, p, 'scale_factor_limit', 'integer', out, 'scale_factor_limit', limitPath, (n) => n >= 0);
    carry(ctx, p, 'preemptive_mode', 'boolean', out, 'preemptive_mode', field('preemptive_mode'));
    reportLeftovers(ctx, p);
    return out;
  });
}
