/**
 * Which fleeting plugin a `[runners.autoscaler] plugin` names. GitLab accepts `<name>`,
 * `<name>:<version>`, `[<registry>/]<repository>/<name>[:<version>]` (default registry
 * registry.gitlab.com, repository gitlab-org/fleeting/plugins) and, for a binary installed by hand,
 * `fleeting-plugin-<name>` on PATH or as a path.
 */

export interface PluginRef {
  /** The plugin's short name: `aws`, `googlecloud`, `azure`, ... */
  name: string;
  /** The repository part when one was written (`gitlab-org/fleeting/plugins`). */
  repository?: string;
  version?: string;
}

export const GITLAB_PLUGIN_REPOSITORY = 'gitlab-org/fleeting/plugins';

export function parsePlugin(plugin: string): PluginRef {
  const trimmed = plugin.trim();
  const lastSlash = trimmed.lastIndexOf('/');
  const tail = trimmed.slice(lastSlash + 1);
  const colon = tail.lastIndexOf(':');
  const base = colon >= 0 ? tail.slice(0, colon) : tail;
  const version = colon >= 0 ? tail.slice(colon + 1) : undefined;
  const name = base.replace(/^fleeting-plugin-/, '').replace(/\.exe$/i, '');
  const ref: PluginRef = { name };
  if (lastSlash > 0) {
    const prefix = trimmed.slice(0, lastSlash);
    // A registry host has a dot or a port in its first segment (as OCI references are read).
    const segments = prefix.split('/');
    const first = segments[0] ?? '';
    const repo = /[.:]/.test(first) || first === 'localhost' ? segments.slice(1).join('/') : prefix;
    ref.repository = repo;
  }
  if (version !== undefined && version !== '') ref.version = version;
  return ref;
}

/** GitLab's AWS plugin, under any of the spellings GitLab accepts. */
export function isAwsPlugin(ref: PluginRef): boolean {
  return ref.name === 'aws';
}
