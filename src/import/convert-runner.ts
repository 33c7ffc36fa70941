/**
 * One `[[runners]]` entry -> a fleet object and its report. Runners with `executor =
 * "docker-autoscaler"` or `"instance"` are converted; every other executor is skipped with the
 * reason. The token is never read into the fleet: `gitlab.token` names an environment variable.
 */
import {
  carried,
  differs,
  notCarried,
  reportLeftovers,
  type FleetObject,
  type RunnerContext,
} from './context.js';
import { convertAutoscaler } from './convert-autoscaler.js';
import { convertCache } from './convert-cache.js';
import { convertDocker } from './convert-docker.js';
import { convertProvider, type ProviderOptions } from './convert-provider.js';
import type { RunnerReport } from './report.js';
import type { Section } from './table.js';

export const AUTOSCALER_EXECUTORS = new Set(['docker-autoscaler', 'instance']);

const SKIPPED_WHY: Record<string, string> = {
  'docker+machine':
    'docker-machine autoscaling is not imported: its [runners.machine] settings describe machines, not an instance group; move it to docker-autoscaler first',
  'docker-windows': 'runfleet runs Linux-like instances only',
};

const RUNNER_NOT_CARRIED: Record<string, string> = {
  id: 'registration metadata GitLab writes; runfleet needs only the token',
  token_obtained_at: 'registration metadata GitLab writes; runfleet needs only the token',
  token_expires_at: 'registration metadata GitLab writes; runfleet needs only the token',
  feature_flags: 'runfleet has no GitLab Runner feature flags',
  shell: 'runfleet runs job scripts with POSIX sh; not configurable',
  instance: 'runfleet has no allowed_images / use_common_build_dir for the instance executor',
  kubernetes: 'a [runners.kubernetes] section belongs to the kubernetes executor; GitLab ignores it here too',
  machine: 'a [runners.machine] section belongs to docker+machine; GitLab ignores it here too',
  custom: 'a [runners.custom] section belongs to the custom executor; GitLab ignores it here too',
  ssh: 'a [runners.ssh] section belongs to the ssh executor; the connector comes from connector_config',
  parallels: 'belongs to the parallels executor; GitLab ignores it here too',
  virtualbox: 'belongs to the virtualbox executor; GitLab ignores it here too',
  output_limit: 'runfleet stops collecting a job log at 4 MiB, as GitLab does by default; not configurable',
};

export interface ConvertedRunner {
  report: RunnerReport;
  /** The fleet object, without name and gitlab.token (the caller names it); undefined unless imported. */
  fleet?: FleetObject;
}

export function convertRunner(runner: Section, index: number, opts: ProviderOptions): ConvertedRunner {
  const name = runner.string('name');
  const executor = runner.string('executor') ?? '';
  const report: RunnerReport = {
    runner: name ?? `runners[${index}]`,
    index,
    executor: executor || '(none)',
    outcome: 'imported',
    reasons: [],
    carried: [],
    notCarried: [],
    differs: [],
  };
  if (!AUTOSCALER_EXECUTORS.has(executor)) {
    report.outcome = 'skipped';
    report.reasons.push(
      SKIPPED_WHY[executor] ??
        `executor ${executor || '(none)'} is not an autoscaler: runfleet imports docker-autoscaler and instance runners`,
    );
    return { report };
  }
  const ctx: RunnerContext = { fleet: {}, report, blockers: [] };
  ctx.fleet.executor = executor === 'docker-autoscaler' ? 'docker' : 'instance';
  carried(ctx, runner, 'executor', `executor: ${ctx.fleet.executor}`);
  if (name !== undefined) carried(ctx, runner, 'name', 'name (as a DNS label)');

  const autoscaler = runner.sub('autoscaler');
  if (!autoscaler) {
    ctx.blockers.push(runner.problem(undefined, `${runner.name} has no [runners.autoscaler] section`));
  } else {
    convertProvider(ctx, autoscaler, opts);
    convertAutoscaler(ctx, autoscaler);
  }
  if (executor === 'docker-autoscaler') convertDocker(ctx, runner.sub('docker'));
  else if (runner.has('docker')) {
    runner.skip('docker');
    notCarried(
      ctx,
      `${runner.name}.docker`,
      'the instance executor runs jobs on the instance; GitLab ignores [runners.docker] here too',
    );
  }
  convertGitlab(ctx, runner);
  convertCache(ctx, runner.sub('cache'));
  convertLimit(ctx, runner);
  reportLeftovers(ctx, runner, (key) => RUNNER_NOT_CARRIED[key]);

  // Type errors found while reading make the runner unusable: GitLab would refuse them too.
  const blockers = [...runner.errors, ...ctx.blockers];
  if (blockers.length > 0) {
    report.outcome = 'not-imported';
    report.reasons.push(...blockers);
    return { report };
  }
  report.slots =
    ((ctx.fleet.max_instances as number) ?? 0) *
    ((ctx.fleet.capacity_per_instance as number | undefined) ?? 1);
  return { report, fleet: ctx.fleet };
}

function convertGitlab(ctx: RunnerContext, runner: Section): void {
  const gitlab: FleetObject = {};
  const url = runner.string('url');
  if (url !== undefined && url !== '') {
    if (/^https?:\/\/[^/\s]/.test(url)) {
      gitlab.url = url.replace(/\/+$/, '');
      carried(ctx, runner, 'url', 'gitlab.url');
    } else {
      ctx.blockers.push(
        runner.problem('url', `${runner.setting('url')} must be an http(s) URL such as https://gitlab.com`),
      );
    }
  }
  // Only noted, never read into anything that is printed or written.
  runner.skip('token');
  if (runner.has('token'))
    carried(ctx, runner, 'token', 'gitlab.token (an environment variable; the token is not written)');
  else
    differs(
      ctx,
      runner.setting('token'),
      'not set in config.toml; the fleet still reads it from its environment variable',
    );
  const rc = runner.integer('request_concurrency');
  if (rc !== undefined && rc >= 1) {
    const kept = Math.min(rc, 100);
    gitlab.request_concurrency = kept;
    carried(
      ctx,
      runner,
      'request_concurrency',
      'gitlab.request_concurrency',
      kept < rc ? `capped at runfleet's maximum, 100` : undefined,
    );
  }
  ctx.fleet.gitlab = gitlab;
}

function convertLimit(ctx: RunnerContext, runner: Section): void {
  const limit = runner.integer('limit');
  if (limit === undefined || limit === 0) return;
  const cap = (ctx.fleet.capacity_per_instance as number | undefined) ?? 1;
  const max = ctx.fleet.max_instances as number | undefined;
  const slots = max === undefined ? undefined : max * cap;
  notCarried(
    ctx,
    runner.setting('limit'),
    slots !== undefined && limit < slots
      ? `the fleet schema has no job limit: runfleet runs up to max_instances × capacity_per_instance = ${slots} jobs, GitLab ran at most ${limit}; lower max_instances to keep that ceiling`
      : 'the fleet schema has no job limit; max_instances × capacity_per_instance bounds the fleet',
  );
}
