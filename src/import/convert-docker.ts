/**
 * `[runners.docker]` of a docker-autoscaler runner -> the fleet's `docker` block. The fleet schema
 * has image, pull_policy, privileged, volumes and host; every other Docker setting (and sub-table
 * such as [runners.docker.tmpfs]) is reported as not carried over.
 */
import { carried, carry, differs, reportLeftovers, type FleetObject, type RunnerContext } from './context.js';
import type { Section } from './table.js';

const PULL_POLICIES = new Set(['always', 'if-not-present', 'never']);

const DOCKER_NOT_CARRIED: Record<string, string> = {
  services:
    'runfleet runs the services each job asks for (.gitlab-ci.yml services:), but has no fleet-wide default services',
  allowed_images: 'runfleet does not restrict job images yet',
  allowed_pull_policies: 'runfleet does not restrict job pull policies yet',
  helper_image: 'runfleet fetches sources outside the job image; it needs no helper image',
  disable_cache: 'runfleet mounts no cache volume into job containers: the manager restores and saves caches',
  cache_dir:
    "runfleet keeps caches in the cache block's store, or under /tmp/runfleet-cache on the instance without one",
};

export function convertDocker(ctx: RunnerContext, docker: Section | undefined): void {
  if (!docker) {
    ctx.blockers.push(
      "[runners.docker] is missing: runfleet's docker executor needs a default image (runners.docker.image)",
    );
    return;
  }
  const out: FleetObject = {};
  const image = carry(ctx, docker, 'image', 'string', out, 'image', 'docker.image');
  if (image === undefined || image === '') {
    ctx.blockers.push(
      docker.problem(
        image === undefined ? undefined : 'image',
        `${docker.setting('image')} is not set; runfleet's docker executor needs a default image`,
      ),
    );
  }
  const rawPull = docker.raw('pull_policy');
  if (rawPull !== undefined) {
    const list = typeof rawPull === 'string' ? [rawPull] : Array.isArray(rawPull) ? rawPull : undefined;
    if (list && list.length > 0 && list.every((p) => typeof p === 'string' && PULL_POLICIES.has(p))) {
      out.pull_policy = [...new Set(list as string[])];
      carried(ctx, docker, 'pull_policy', 'docker.pull_policy');
    } else {
      ctx.blockers.push(
        docker.problem(
          'pull_policy',
          `${docker.setting('pull_policy')} must be always, if-not-present or never, or a list of them`,
        ),
      );
    }
  }
  carry(ctx, docker, 'privileged', 'boolean', out, 'privileged', 'docker.privileged');
  const volumes = docker.strings('volumes');
  if (volumes !== undefined) {
    const kept = volumes.filter((v) => v !== '');
    out.volumes = kept;
    carried(ctx, docker, 'volumes', 'docker.volumes');
    if (kept.some((v) => !v.includes(':'))) {
      differs(
        ctx,
        docker.setting('volumes'),
        'a volume without a host path (such as "/cache") is a cache volume in GitLab; in runfleet it is a plain container volume (the manager restores and saves caches; see the cache block)',
      );
    }
  }
  carry(ctx, docker, 'host', 'string', out, 'host', 'docker.host');
  const wait = docker.integer('wait_for_services_timeout');
  if (wait === 0) {
    differs(
      ctx,
      docker.setting('wait_for_services_timeout'),
      "0 means GitLab's default (30 s), as runfleet's default",
    );
  } else if (wait !== undefined) {
    // GitLab waits only when the timeout is positive: every negative value turns the wait off.
    out.wait_for_services_timeout = Math.max(wait, -1);
    const note = wait < -1 ? `${wait} written as -1 (no wait), which GitLab reads the same` : undefined;
    carried(ctx, docker, 'wait_for_services_timeout', 'docker.wait_for_services_timeout', note);
  }
  ctx.fleet.docker = out;
  reportLeftovers(ctx, docker, (key) => DOCKER_NOT_CARRIED[key]);
}
