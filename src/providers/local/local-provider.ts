/**
 * The `local` provider: runfleet's embedded default. Each instance is a sandbox directory
 *
 *   <stateDir>/local/<group>/<instance-id>/instance.json   {id, fleet, state, launched_at}
 *   <stateDir>/local/<group>/<instance-id>/work/           where the job runtime runs jobs
 *
 * The filesystem is the provider's only truth, so its view survives CLI runs (plan → apply → plan
 * shows no changes) and a crash: a sandbox is built under a temporary name and renamed into place
 * once complete, so `<id>/` always holds a complete instance.json (sandboxes.ts). Observing only
 * reads; what a crash left behind is reported, and swept by the group's next change.
 */
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { mkdir, rm, stat } from 'node:fs/promises';
import { FleetError } from '../../errors.js';
import type { Fleet } from '../../model/fleet.js';
import { groupRefFor } from '../../model/group.js';
import type { GroupRef, ObservedGroup, ObservedInstance } from '../../model/observed.js';
import type { Diagnostic } from '../../model/plan.js';
import { systemTime, type Time } from '../../util/time.js';
import type { ConnectInfo, Provider } from '../provider.js';
import { fsStep, isDirectory, listEntries } from './fs-steps.js';
import {
  SandboxPaths,
  WORK_DIR,
  assertGroupName,
  assertIdPrefix,
  assertInstanceId,
  parseEntryName,
} from './sandbox-paths.js';
import { Sandboxes, readInstanceFile, type CreateStepHook } from './sandboxes.js';

export type { CreateStep, LocalInstanceFile } from './sandboxes.js';

export interface LocalProviderOptions {
  /** runfleet's state directory; sandboxes live under `<stateDir>/local/`. */
  stateDir: string;
  /** Stamps `launched_at`. @default systemTime */
  time?: Time;
  /** Start of every new instance id, ending in `-`. @default 'local-' */
  idPrefix?: string;
  /** Called after each step of creating a sandbox: lets tests crash the process at every step. */
  onCreateStep?: CreateStepHook;
}

export function createLocalProvider(opts: LocalProviderOptions): Provider {
  const idPrefix = opts.idPrefix ?? 'local-';
  assertIdPrefix(idPrefix);
  const paths = new SandboxPaths(opts.stateDir);
  const time = opts.time ?? systemTime;
  const sandboxes = new Sandboxes(paths, idPrefix, time, opts.onCreateStep);

  return {
    type: 'local',

    async observe(groups, signal) {
      signal?.throwIfAborted();
      return Promise.all(groups.map((ref) => observeGroup(paths, sandboxes, ref)));
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
      await sandboxes.sweep(ref.name);
      const entries = await listEntries(dir);
      if (entries === undefined) return;
      const live = entries
        .filter((e) => e.isDirectory() && parseEntryName(e.name)?.kind === 'live')
        .map((e) => e.name);
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
      await sandboxes.sweep(ref.name);
      for (let created = 0; created < n; created++) {
        signal?.throwIfAborted();
        await sandboxes.create(ref);
      }
      return n;
    },

    async decrease(ref, ids, signal) {
      signal?.throwIfAborted();
      assertGroupName(ref.name);
      ids.forEach(assertInstanceId); // all or nothing: no path is touched if one id is bad
      const unique = [...new Set(ids)];
      await sandboxes.sweep(ref.name);
      for (const id of unique) {
        signal?.throwIfAborted();
        await sandboxes.remove(ref.name, id);
      }
      return unique;
    },

    async connectInfo(ref, id, signal): Promise<ConnectInfo> {
      signal?.throwIfAborted();
      const dir = paths.sandbox(ref.name, id);
      if ((await readInstanceFile(dir)) === undefined) {
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
      return (await readInstanceFile(paths.sandbox(ref.name, id))) !== undefined;
    },
  };
}

async function observeGroup(
  paths: SandboxPaths,
  sandboxes: Sandboxes,
  ref: GroupRef,
): Promise<ObservedGroup> {
  const dir = paths.group(ref.name);
  const observed: ObservedGroup = { ref, exists: false, settings: {}, instances: [], diagnostics: [] };
  const entries = await listEntries(dir);
  if (entries === undefined) return observed;
  observed.exists = true;

  // `<id>` and `<id>.deleting` may both exist after an interrupted removal; deleting wins.
  const byId = new Map<string, ObservedInstance>();
  for (const entry of entries) {
    if (!entry.isDirectory()) continue; // a file is never a sandbox
    const parsed = parseEntryName(entry.name);
    const path = join(dir, entry.name);
    if (parsed === undefined) {
      observed.diagnostics.push(unknownEntry(ref, entry.name));
    } else if (parsed.kind === 'deleting') {
      const file = await readInstanceFile(path);
      const launchedAt = file?.launched_at ?? (await mtime(path));
      if (launchedAt !== undefined)
        byId.set(parsed.id, { id: parsed.id, state: 'deleting', launched_at: launchedAt });
    } else if (parsed.kind === 'creating') {
      if (!sandboxes.isBuilding(path)) observed.diagnostics.push(incompleteSandbox(ref, entry.name));
    } else {
      const file = await readInstanceFile(path);
      if (file !== undefined) {
        if (!byId.has(parsed.id))
          byId.set(parsed.id, { id: parsed.id, state: file.state, launched_at: file.launched_at });
      } else if (await isDirectory(path)) {
        // Still there, so not a removal that raced this read: an older version's interrupted creation.
        observed.diagnostics.push(incompleteSandbox(ref, entry.name));
      }
    }
  }
  observed.instances = [...byId.values()].sort(
    (a, b) => a.launched_at.localeCompare(b.launched_at) || a.id.localeCompare(b.id),
  );
  return observed;
}

/** A directory's mtime; undefined when it vanished while being read. */
async function mtime(path: string): Promise<string | undefined> {
  const info = await stat(path).catch(() => undefined);
  return info?.mtime.toISOString();
}

function incompleteSandbox(ref: GroupRef, name: string): Diagnostic {
  return {
    severity: 'warning',
    code: 'LOCAL_INCOMPLETE_SANDBOX',
    message: `local group ${ref.name} holds ${name}, a sandbox without a complete instance.json (an interrupted creation); it is not an instance`,
    hint: 'the next increase or decrease of the fleet removes it',
  };
}

function unknownEntry(ref: GroupRef, name: string): Diagnostic {
  return {
    severity: 'warning',
    code: 'LOCAL_UNKNOWN_ENTRY',
    message: `local group ${ref.name} holds ${JSON.stringify(name)}, which is not a runfleet sandbox`,
    hint: 'runfleet leaves it alone; remove it by hand if nothing needs it',
  };
}

function currentUsername(): string {
  try {
    return userInfo().username;
  } catch {
    // userInfo throws when the uid has no passwd entry (common in containers).
    return process.env['USER'] ?? 'unknown';
  }
}
