/**
 * `plugin` + `[runners.autoscaler.plugin_config]` -> `provider`. GitLab's AWS plugin becomes the
 * built-in `aws` provider adopting the plugin's Auto Scaling group (`name`). Any other fleeting
 * plugin blocks the runner: runfleet has no generic fleeting provider yet (issue 14).
 */
import { carried, carry, differs, notCarried, reportLeftovers, type RunnerContext } from './context.js';
import { GITLAB_PLUGIN_REPOSITORY, isAwsPlugin, parsePlugin } from './plugin.js';
import type { Section } from './table.js';

export interface ProviderOptions {
  /** Region for AWS runners whose plugin_config has none (the plugin then uses the SDK's). */
  region?: string;
}

const REGION = /^[a-z]{2}(-[a-z]+)+-[0-9]+$/;

export function convertProvider(ctx: RunnerContext, autoscaler: Section, opts: ProviderOptions): void {
  const plugin = autoscaler.string('plugin');
  if (plugin === undefined || plugin.trim() === '') {
    ctx.blockers.push(
      autoscaler.problem(
        undefined,
        `${autoscaler.setting('plugin')} is not set; runfleet needs to know the instance group`,
      ),
    );
    return;
  }
  const ref = parsePlugin(plugin);
  const config = autoscaler.sub('plugin_config');
  if (!isAwsPlugin(ref)) {
    ctx.blockers.push(
      `${autoscaler.problem('plugin', `plugin ${JSON.stringify(plugin)}`)}: fleeting plugins are not supported yet; runfleet runs AWS Auto Scaling groups (plugin "aws") only (a fleeting provider is issue 14)`,
    );
    if (config) config.leftover().forEach((k) => config.skip(k));
    return;
  }
  carried(ctx, autoscaler, 'plugin', 'provider.type = aws');
  if (ref.repository !== undefined && ref.repository !== GITLAB_PLUGIN_REPOSITORY) {
    differs(
      ctx,
      autoscaler.setting('plugin'),
      `read as GitLab's AWS plugin although its repository is ${ref.repository}`,
    );
  }
  if (ref.version !== undefined) {
    notCarried(
      ctx,
      `${autoscaler.setting('plugin')} version`,
      'runfleet talks to AWS itself; there is no plugin version',
    );
  }
  const provider: Record<string, unknown> = { type: 'aws' };
  ctx.fleet.provider = provider;
  if (!config) {
    ctx.blockers.push(
      autoscaler.problem(
        undefined,
        `${autoscaler.setting('plugin_config')} is missing: the AWS plugin needs the group's name`,
      ),
    );
    return;
  }
  const region = config.string('region');
  if (region !== undefined && region !== '') {
    if (REGION.test(region)) {
      provider.region = region;
      carried(ctx, config, 'region', 'provider.region');
    } else {
      ctx.blockers.push(
        config.problem(
          'region',
          `${config.setting('region')} ${JSON.stringify(region)} is not an AWS region such as eu-west-1`,
        ),
      );
    }
  } else if (opts.region !== undefined) {
    provider.region = opts.region;
    differs(
      ctx,
      config.setting('region'),
      `unset (the plugin used the SDK's region); the fleet uses --region ${opts.region}`,
    );
  } else {
    ctx.blockers.push(
      config.problem(
        undefined,
        `${config.setting('region')} is not set and runfleet needs the group's region`,
      ) + ' (pass --region, e.g. --region eu-west-1)',
    );
  }
  carry(ctx, config, 'profile', 'string', provider, 'profile', 'provider.profile');
  const group = carry(
    ctx,
    config,
    'name',
    'string',
    provider,
    'auto_scaling_group',
    'provider.auto_scaling_group (adopted)',
  );
  if (group !== undefined && group !== '') {
    differs(
      ctx,
      config.setting('name'),
      "adopted: runfleet keeps the group's instances and manages min size 0, max size = max_instances, scale-in protection, AZRebalance suspended and its tags (runfleet plan shows each change)",
    );
  } else {
    ctx.blockers.push(
      config.problem(undefined, `${config.setting('name')} (the Auto Scaling group) is not set`),
    );
  }
  for (const [key, env] of [
    ['config_file', 'AWS_CONFIG_FILE'],
    ['credentials_file', 'AWS_SHARED_CREDENTIALS_FILE'],
  ] as const) {
    if (!config.has(key)) continue;
    config.skip(key);
    notCarried(
      ctx,
      config.setting(key),
      `the fleet schema has no such field; set ${env} for runfleet instead`,
    );
  }
  reportLeftovers(ctx, config, () => "not a setting of runfleet's aws provider");
}
