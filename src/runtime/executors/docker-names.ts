/**
 * Names the docker executor derives from a job, the way gitlab-runner derives them: a service's
 * default aliases from its image name (helpers/container/services `SplitNameAndVersion`), and
 * `$VAR` expansion of image and service names against the job's variables (`expandImageName`).
 */
import type { JobVariable } from '../gitlab/job.js';
import { expandValue } from '../script/variables.js';

export interface ServiceName {
  /** The image name without registry port, tag or digest: `registry.tld/group/postgres`. */
  service: string;
  /** `15`, `latest`, or `@sha256:…`. */
  version: string;
  /** The image to pull: `latest` added when the name has neither tag nor digest. */
  image: string;
  /** `group__postgres`, then `group-postgres` when different (RFC 1123 host names). */
  aliases: string[];
}

// A docker reference: optional `host[:port]/`, path components, optional `:tag`, `@digest`.
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const DOMAIN =
  '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?';
const REFERENCE = new RegExp(
  `^((?:${DOMAIN}/)?${COMPONENT}(?:/${COMPONENT})*)(?::([\\w][\\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$`,
);
const DIGEST_ONLY = /@sha256:.{64}$/;

/** Splits a service image name as gitlab-runner does; an unparsable name gets no aliases. */
export function splitServiceName(name: string): ServiceName {
  const m = REFERENCE.exec(name);
  if (!m) return { service: '', version: 'latest', image: name, aliases: [] };
  const withoutVersion = m[1] ?? '';
  const tag = m[2] ?? '';
  // The registry's port is not part of the alias: `host:5000/x` → `host/x`.
  const slash = withoutVersion.indexOf('/');
  const first = slash < 0 ? withoutVersion : withoutVersion.slice(0, slash);
  const rest = slash < 0 ? '' : withoutVersion.slice(slash);
  const service = first.replace(/:[0-9]+$/, '') + rest;
  let version: string;
  let image: string;
  const digest = DIGEST_ONLY.exec(name);
  if (tag) {
    version = tag;
    image = name;
  } else if (digest) {
    version = digest[0];
    image = name;
  } else {
    version = 'latest';
    image = `${withoutVersion}:latest`;
  }
  const alias = service.replaceAll('/', '__');
  const alternative = service.replaceAll('/', '-');
  return { service, version, image, aliases: alias === alternative ? [alias] : [alias, alternative] };
}

/** The aliases a job wrote for a service: one or several, separated by commas or spaces. */
export function writtenAliases(alias: string | null | undefined): string[] {
  return (alias ?? '').replaceAll(',', ' ').split(/\s+/).filter(Boolean);
}

/** Expands `$VAR`/`${VAR}` in `value` against `vars` (last one of a key wins), as the runner does. */
export function expandWith(value: string, vars: readonly JobVariable[]): string {
  if (!value.includes('$')) return value;
  return expandValue(value, new Map(vars.map((v) => [v.key, v.value])));
}
