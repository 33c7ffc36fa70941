/**
 * The `local` provider: runfleet's embedded default. Each instance is a sandbox directory
 *
 *   <stateDir>/local/<group>/<instance-id>/instance.json   {id, fleet, state, launched_at}
 *   <stateDir>/local/<group>/<instance-id>/work/           where the job runtime runs jobs
 *
 * The filesystem is the provider's only truth, so its view survives CLI runs (plan → apply → plan
 * shows no changes) and a crash: `instance.json` is written to a temp file and renamed into place, so
 * a sandbox is either `creating` (no file yet) or complete; a sandbox being removed is first renamed
 * to `<id>.deleting`, so a half-removed one is still reported as `deleting`, never as a live instance.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { FleetError, asError, isFleetError } from '../../errors.js';
import type { Fleet } from '../../model/fleet.js';
import { groupRefFor } from '../../model/group.js';
import type {
  GroupRef,
  ObservedGroup,
  ObservedInstance,
  ProviderInstanceState,
} from '../../model/observed.js';
import type { Diagnostic } from '../../model/plan.js';
import { systemTime, type Time } from '../../util/time.js';
import type { ConnectInfo, Provider } from '../provider.js';
import {
  DELETING_SUFFIX,
  INSTANCE_FILE,
  SandboxPaths,
  WORK_DIR,
  assertGroupName,
  assertIdPrefix,
  assertInstanceId,
  isInstanceId,
} from './sandbox-paths.js';

export interface LocalProviderOptions {
  /** runfleet's state directory; sandboxes live under `<stateDir>/local/`. */
  stateDir: string;
  /** Stamps `launched_at`. @default systemTime */
  time?: Time;
  /** Start of every new instance id, ending in `-`. @default 'local-' */
  idPrefix?: string;
}

/** The content of a sandbox's `instance.json`. */
export interface LocalInstanceFile {
  id: string;
  fleet: string;
  state: ProviderInstanceState;
  launched_at: string;
}

const INSTANCE_STATES: readonly ProviderInstanceState[] = ['creating', 'running', 'deleting', 'gone'];

export function createLocalProvider(opts: LocalProviderOptions): Provider {
  const idPrefix = opts.idPrefix ?? 'local-';
  assertIdPrefix(idPrefix);
  const paths = new SandboxPaths(opts.stateDir);
  const time = opts.time ?? systemTime;

  return {
    type: 'local',

    async observe(groups, signal) {
      signal?.throwIfAborted();
      return Promise.all(groups.map((ref) => observeGroup(paths, ref)));
    },

    async applyGroup(fleet: Fleet, signal) {
      signal?.throwIfAborted();
      if (fleet.provider.type !== 'local') {
        throw new FleetError(
          'INTERNAL',
          `local provider asked to apply ${fleet.provider.type} fleet ${fleet.name}`,
        );
      }
      const dir = paths.group(groupRefFor(fleet).name);
      await fsStep(`create group directory ${dir}`, () => mkdir(dir, { recursive: true }));
    },

    async deleteGroup(ref, _fleet, signal) {
      signal?.throwIfAborted();
      const dir = paths.group(ref.name);
      const entries = await listEntries(dir);
      if (entries === undefined) return;
      const live = entries.filter((e) => e.isDirectory() && isInstanceId(e.name)).map((e) => e.name);
      if (live.length > 0) {
        throw new FleetError(
          'PROVIDER',
          `local group ${ref.name} still has ${live.length} instance(s): ${live.sort().join(', ')}`,
          { hint: 'decrease its instances first; runfleet apply removes them before the group' },
        );
      }
      // What is left are half-removed sandboxes and stray temp files: all ours to remove.
      await fsStep(`remove group directory ${dir}`, () => rm(dir, { recursive: true, force: true }));
    },

    async increase(ref, n, signal) {
      signal?.throwIfAborted();
      if (!Number.isInteger(n) || n < 0) {
        throw new FleetError('INTERNAL', `local provider: increase by ${n} is not a whole number >= 0`);
      }
      const dir = paths.group(ref.name);
      if ((await listEntries(dir)) === undefined) {
        throw new FleetError('PROVIDER', `local group ${ref.name} does not exist`, {
          hint: 'apply the fleet first: the group is created before instances are added',
        });
      }
      for (let created = 0; created < n; created++) {
        signal?.throwIfAborted();
        await createSandbox(paths, ref, idPrefix, time);
      }
      return n;
    },

    async decrease(ref, ids, signal) {
      signal?.throwIfAborted();
      assertGroupName(ref.name);
      ids.forEach(assertInstanceId); // all or nothing: no path is touched if one id is bad
      const unique = [...new Set(ids)];
      for (const id of unique) {
        signal?.throwIfAborted();
        await removeSandbox(paths, ref.name, id);
      }
      return unique;
    },

    async connectInfo(ref, id, signal): Promise<ConnectInfo> {
      signal?.throwIfAborted();
      const dir = paths.sandbox(ref.name, id);
      if (!(await isDirectory(dir))) {
        throw new FleetError('PROVIDER', `local instance ${id} of group ${ref.name} does not exist`, {
          hint: 'it may have been removed; run runfleet plan to see the fleet as it is',
        });
      }
      return {
        id,
        protocol: 'local',
        address: 'localhost',
        port: 0,
        username: currentUsername(),
        workdir: join(dir, WORK_DIR),
      };
    },

    async heartbeat(ref, id, signal) {
      signal?.throwIfAborted();
      return isDirectory(paths.sandbox(ref.name, id));
    },
  };
}

async function observeGroup(paths: SandboxPaths, ref: GroupRef): Promise<ObservedGroup> {
  const dir = paths.group(ref.name);
  const observed: ObservedGroup = { ref, exists: false, settings: {}, instances: [], diagnostics: [] };
  const entries = await listEntries(dir);
  if (entries === undefined) return observed;
  observed.exists = true;

  // `<id>` and `<id>.deleting` may both exist after an interrupted removal; deleting wins.
  const byId = new Map<string, ObservedInstance>();
  for (const entry of entries) {
    if (!entry.isDirectory()) continue; // temp files from an interrupted write
    const deleting = entry.name.endsWith(DELETING_SUFFIX);
    const id = deleting ? entry.name.slice(0, -DELETING_SUFFIX.length) : entry.name;
    if (!isInstanceId(id)) {
      observed.diagnostics.push(unknownEntry(ref, entry.name));
      continue;
    }
    const instance = await readSandbox(join(dir, entry.name), id, deleting, observed.diagnostics);
    if (instance && (deleting || !byId.has(id))) byId.set(id, instance);
  }
  observed.instances = [...byId.values()].sort(
    (a, b) => a.launched_at.localeCompare(b.launched_at) || a.id.localeCompare(b.id),
  );
  return observed;
}

/** One sandbox as an observed instance; undefined when it vanished while being read. */
async function readSandbox(
  dir: string,
  id: string,
  deleting: boolean,
  diagnostics: Diagnostic[],
): Promise<ObservedInstance | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, INSTANCE_FILE), 'utf8');
  } catch (e) {
    if (errno(e) !== 'ENOENT' && errno(e) !== 'ENOTDIR') throw fsError(`read ${dir}`, e);
    // Created but not yet described (or its file already removed): date it by the directory.
    const info = await stat(dir).catch(() => undefined);
    if (!info) return undefined;
    return { id, state: deleting ? 'deleting' : 'creating', launched_at: info.mtime.toISOString() };
  }
  const file = parseInstanceFile(text);
  if (!file) {
    diagnostics.push({
      severity: 'warning',
      code: 'LOCAL_INSTANCE_FILE_INVALID',
      message: `local instance ${id}: ${join(dir, INSTANCE_FILE)} is not valid`,
      hint: `remove the instance (it is reported as creating), or repair the file`,
    });
    const info = await stat(dir).catch(() => undefined);
    if (!info) return undefined;
    return { id, state: deleting ? 'deleting' : 'creating', launched_at: info.mtime.toISOString() };
  }
  return { id, state: deleting ? 'deleting' : file.state, launched_at: file.launched_at };
}

function parseInstanceFile(text: string): LocalInstanceFile | undefined {
  try {
    const v = JSON.parse(text) as Partial<LocalInstanceFile> | null;
    if (
      v &&
      typeof v.id === 'string' &&
      typeof v.fleet === 'string' &&
      typeof v.launched_at === 'string' &&
      INSTANCE_STATES.includes(v.state as ProviderInstanceState)
    ) {
      return v as LocalInstanceFile;
    }
  } catch {
    // fall through: reported by the caller
  }
  return undefined;
}

function unknownEntry(ref: GroupRef, name: string): Diagnostic {
  return {
    severity: 'warning',
    code: 'LOCAL_UNKNOWN_ENTRY',
    message: `local group ${ref.name} holds ${JSON.stringify(name)}, which is not a runfleet sandbox`,
    hint: 'runfleet leaves it alone; remove it by hand if nothing needs it',
  };
}

async function createSandbox(
  paths: SandboxPaths,
  ref: GroupRef,
  idPrefix: string,
  time: Time,
): Promise<string> {
  // 32 random bits per id; a collision is retried rather than overwriting a live sandbox.
  for (let attempt = 0; attempt < 5; attempt++) {
    const id = `${idPrefix}${randomBytes(4).toString('hex')}`;
    const dir = paths.sandbox(ref.name, id);
    try {
      await mkdir(dir);
    } catch (e) {
      if (errno(e) === 'EEXIST') continue;
      throw fsError(`create sandbox ${dir}`, e);
    }
    await fsStep(`create sandbox ${dir}`, async () => {
      await mkdir(join(dir, WORK_DIR));
      const file: LocalInstanceFile = {
        id,
        fleet: ref.fleet,
        state: 'running',
        launched_at: time.now().toISOString(),
      };
      await writeFileAtomic(join(dir, INSTANCE_FILE), `${JSON.stringify(file, null, 2)}\n`);
    });
    return id;
  }
  throw new FleetError('PROVIDER', `local group ${ref.name}: could not pick an unused instance id`, {
    retryable: true,
  });
}

/** Write to a temp file in the same directory, flush it, then rename over the target. */
async function writeFileAtomic(path: string, content: string): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx');
  try {
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
}

/** Mark (rename) then remove; each step tolerates a previous, interrupted attempt. */
async function removeSandbox(paths: SandboxPaths, group: string, id: string): Promise<void> {
  const live = paths.sandbox(group, id);
  const marked = paths.deleting(group, id);
  await fsStep(`remove sandbox ${live}`, async () => {
    try {
      await rename(live, marked);
    } catch (e) {
      const code = errno(e);
      if (code === 'ENOTEMPTY' || code === 'EEXIST') {
        // A leftover `<id>.deleting` from an interrupted removal blocks the rename.
        await rm(marked, { recursive: true, force: true });
        await rename(live, marked);
      } else if (code !== 'ENOENT') {
        throw e;
      }
    }
    await rm(marked, { recursive: true, force: true });
  });
}

/** Directory entries, or undefined when the directory does not exist. */
async function listEntries(dir: string) {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if (errno(e) === 'ENOENT') return undefined;
    throw fsError(`read ${dir}`, e);
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (e) {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return false;
    throw fsError(`check ${path}`, e);
  }
}

function currentUsername(): string {
  try {
    return userInfo().username;
  } catch {
    // userInfo throws when the uid has no passwd entry (common in containers).
    return process.env['USER'] ?? 'unknown';
  }
}

async function fsStep<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isFleetError(e)) throw e;
    throw fsError(what, e);
  }
}

function fsError(what: string, e: unknown): FleetError {
  const code = errno(e);
  return new FleetError('PROVIDER', `local provider: cannot ${what}: ${asError(e).message}`, {
    hint:
      code === 'EACCES' || code === 'EPERM'
        ? 'check that runfleet may write its state directory'
        : 'check the disk and the state directory',
    // A full disk or a busy file may clear up; a permission problem will not.
    retryable: code !== 'EACCES' && code !== 'EPERM',
    cause: e,
  });
}

function errno(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
