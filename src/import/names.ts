/**
 * Fleet names from runner names. A fleet name is a DNS label (schema: `a-z0-9-`, at most 63) and
 * unique across the fleets directory; runner names are free text and often repeat ("docker
 * autoscaler example" is in every copy of GitLab's docs), so collisions are resolved with `-2`,
 * `-3`... and reported.
 */

const MAX_LABEL = 63;

/** `"My Runner (AWS) #1"` -> `my-runner-aws-1`; empty when nothing of the name is usable. */
export function dnsLabel(name: string): string {
  return (
    name
      .normalize('NFKD')
      // NFKD splits "ü" into "u" and a combining mark: drop the marks, keep the letters.
      .replace(/\p{M}/gu, '')
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, MAX_LABEL)
      .replace(/-+$/, '')
  );
}

/** `fallback` is used when the runner name gives no label (unnamed, or only symbols). */
export function fleetNameFor(runnerName: string | undefined, fallback: string): string {
  return dnsLabel(runnerName ?? '') || fallback;
}

/**
 * A name not in `taken` (which it is then added to): `base`, else `base-2`, `base-3`... trimmed so
 * the suffix still fits in a DNS label.
 */
export function uniqueName(base: string, taken: Set<string>): string {
  let name = base;
  for (let n = 2; taken.has(name); n++) {
    const suffix = `-${n}`;
    name = base.slice(0, MAX_LABEL - suffix.length).replace(/-+$/, '') + suffix;
  }
  taken.add(name);
  return name;
}

/** The environment variable a fleet's token is read from: `RUNFLEET_TOKEN_<NAME>`. */
export function tokenEnvFor(fleet: string): string {
  return `RUNFLEET_TOKEN_${fleet.toUpperCase().replace(/-/g, '_')}`;
}

/** The environment variable a fleet's cache key is read from: `RUNFLEET_CACHE_S3_ACCESS_KEY_<NAME>`. */
export function cacheKeyEnvFor(fleet: string, field: 'access_key' | 'secret_key'): string {
  return `RUNFLEET_CACHE_S3_${field.toUpperCase()}_${fleet.toUpperCase().replace(/-/g, '_')}`;
}
