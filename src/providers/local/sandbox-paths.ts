/**
 * Where the local provider keeps its sandboxes, and the name checks that keep every path it
 * touches inside the state directory. Names are validated before any path is built: a group name is
 * a DNS label and an instance id is `<prefix><hex>`, so neither can hold `/`, `\`, `.` or `..`.
 */
import { join } from 'node:path';
import { FleetError } from '../../errors.js';

/** Lowercase DNS label (RFC 1123): what fleet names are. */
const GROUP_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** A prefix ending in `-`, then 1..32 hex digits, e.g. `local-1a2b3c4d`. */
const INSTANCE_ID = /^[a-z][a-z0-9-]{0,31}-[0-9a-f]{1,32}$/;
/** What `idPrefix` may be: a short lowercase word ending in `-`. */
const ID_PREFIX = /^[a-z][a-z0-9-]{0,31}-$/;

/** Suffix of a sandbox directory that is being removed; renaming to it is the atomic "deleting" mark. */
export const DELETING_SUFFIX = '.deleting';
/** Suffix of a sandbox being built; renaming it to `<id>` is the atomic "created" step. */
export const CREATING_SUFFIX = '.creating';
export const INSTANCE_FILE = 'instance.json';
export const WORK_DIR = 'work';

export function assertGroupName(name: string): void {
  if (!GROUP_NAME.test(name)) {
    throw new FleetError('PROVIDER', `local provider: invalid group name ${JSON.stringify(name)}`, {
      hint: 'fleet names are lowercase DNS labels: a-z, 0-9 and -, at most 63 characters',
    });
  }
}

export function isInstanceId(id: string): boolean {
  return INSTANCE_ID.test(id);
}

export function assertInstanceId(id: string): void {
  if (!isInstanceId(id)) {
    throw new FleetError('PROVIDER', `local provider: invalid instance id ${JSON.stringify(id)}`, {
      hint: 'local instance ids look like local-1a2b3c4d; check the plan or the id you passed',
    });
  }
}

export function assertIdPrefix(prefix: string): void {
  if (!ID_PREFIX.test(prefix)) {
    throw new FleetError('INTERNAL', `local provider: invalid id prefix ${JSON.stringify(prefix)}`, {
      hint: 'an id prefix is lowercase letters, digits and -, and ends in -, e.g. local-',
    });
  }
}

/** What a directory in a group is, by its name; undefined when it is not runfleet's. */
export function parseEntryName(
  name: string,
): { id: string; kind: 'live' | 'creating' | 'deleting' } | undefined {
  for (const [suffix, kind] of [
    [CREATING_SUFFIX, 'creating'],
    [DELETING_SUFFIX, 'deleting'],
  ] as const) {
    if (!name.endsWith(suffix)) continue;
    const id = name.slice(0, -suffix.length);
    return isInstanceId(id) ? { id, kind } : undefined;
  }
  return isInstanceId(name) ? { id: name, kind: 'live' } : undefined;
}

/** Path helpers over one state directory; every method validates its names first. */
export class SandboxPaths {
  readonly root: string;

  constructor(stateDir: string) {
    this.root = join(stateDir, 'local');
  }

  group(name: string): string {
    assertGroupName(name);
    return join(this.root, name);
  }

  sandbox(group: string, id: string): string {
    assertInstanceId(id);
    return join(this.group(group), id);
  }

  deleting(group: string, id: string): string {
    return this.sandbox(group, id) + DELETING_SUFFIX;
  }

  creating(group: string, id: string): string {
    return this.sandbox(group, id) + CREATING_SUFFIX;
  }
}
