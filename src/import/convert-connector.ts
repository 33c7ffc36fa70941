/**
 * `[runners.autoscaler.connector_config]` -> the fleet's `connector` (GitLab's ConnectorConfig).
 * A password is never copied: runfleet connects with keys, and the report names it only.
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
import { convertGoDuration } from './go-duration.js';
import type { Section } from './table.js';

/** GitLab's connector_config keys -> runfleet's connector fields (GitLab calls the port `protocol_port`). */
export function convertConnector(ctx: RunnerContext, c: Section): void {
  const out: FleetObject = {};
  carry(ctx, c, 'username', 'string', out, 'username', 'connector.username');
  const protocol = c.string('protocol');
  if (protocol !== undefined && protocol !== '') {
    if (protocol === 'ssh') {
      out.protocol = 'ssh';
      carried(ctx, c, 'protocol', 'connector.protocol');
    } else {
      ctx.blockers.push(
        c.problem(
          'protocol',
          `${c.setting('protocol')} is ${JSON.stringify(protocol)}; runfleet connects over ssh only`,
        ),
      );
    }
  }
  carry(ctx, c, 'protocol_port', 'integer', out, 'port', 'connector.port', (n) => n >= 1 && n <= 65535);
  carry(ctx, c, 'key_path', 'string', out, 'key_path', 'connector.key_path');
  for (const key of ['use_static_credentials', 'use_external_addr']) {
    carry(ctx, c, key, 'boolean', out, key, `connector.${key}`);
  }
  for (const key of ['keepalive', 'timeout']) {
    const v = c.raw(key);
    if (v === undefined) continue;
    const d = convertGoDuration(v);
    if (d === undefined) {
      ctx.blockers.push(c.problem(key, `${c.setting(key)} is not a duration such as "10m0s"`));
    } else if (d.text === '0s') {
      differs(ctx, c.setting(key), "0 means GitLab's default; runfleet's default applies");
    } else {
      out[key] = d.text;
      carried(ctx, c, key, `connector.${key}`, d.lossy);
    }
  }
  if (out.key_path !== undefined && out.use_static_credentials !== true) {
    differs(
      ctx,
      c.setting('key_path'),
      'runfleet reads key_path only with use_static_credentials = true; otherwise it pushes its own generated key (EC2 Instance Connect)',
    );
  }
  if (typeof out.key_path === 'string' && !out.key_path.startsWith('/')) {
    differs(ctx, c.setting('key_path'), "a relative path is read from runfleet's working directory");
  }
  c.skip('password');
  if (c.has('password')) {
    notCarried(
      ctx,
      c.setting('password'),
      'runfleet authenticates with keys only; the password is not copied',
    );
  }
  reportLeftovers(ctx, c, (key) =>
    key === 'os' || key === 'arch'
      ? 'runfleet runs POSIX sh jobs on Linux-like instances; not configurable'
      : key === 'port'
        ? 'GitLab calls the port protocol_port and ignores port'
        : undefined,
  );
  if (Object.keys(out).length > 0) ctx.fleet.connector = out;
}
