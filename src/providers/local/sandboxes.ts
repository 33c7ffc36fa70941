/**
 * A local sandbox's life on disk. Creation is atomic: the sandbox is built as `<id>.creating` (work
 * directory, then a flushed instance.json) and renamed to `<id>` only once complete, so a crash at
 * any step leaves either a complete sandbox or a `.creating` leftover, which is no instance.
 * Removal renames `<id>` to `<id>.deleting` first, so a half-removed sandbox is still `deleting`.
 * Leftovers, and `<id>` directories without a complete instance.json (which versions before atomic
 * creation left behind on a crash), are swept by the next change to their group.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../../errors.js';
import type { GroupRef, ProviderInstanceState } from '../../model/observed.js';
import type { Time } from '../../util/time.js';
import { errno, fsError, fsStep, listEntries } from './fs-steps.js';
import { INSTANCE_FILE, WORK_DIR, parseEntryName, type SandboxPaths } from './sandbox-paths.js';

/** The steps of creating a sandbox, in order; `renamed` is the one that makes it exist. */
export type CreateStep = 'directory' | 'work' | 'instance-file' | 'renamed';
export type CreateStepHook = (step: CreateStep) => void | Promise<void>;

/** The content of a sandbox's `instance.json`. */
export interface LocalInstanceFile {
  id: string;
  fleet: string;
  state: ProviderInstanceState;
  launched_at: string;
}

const INSTANCE_STATES: readonly ProviderInstanceState[] = ['creating', 'running', 'deleting', 'gone'];

/** A sandbox's instance.json; undefined when it is missing or not valid. */
export async function readInstanceFile(dir: string): Promise<LocalInstanceFile | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, INSTANCE_FILE), 'utf8');
  } catch (e) {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return undefined;
    throw fsError(`read ${dir}`, e);
  }
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
    // not JSON: as incomplete as a missing file
  }
  return undefined;
}

export class Sandboxes {
  /** `.creating` directories this provider is building right now: not leftovers, not to sweep. */
  private readonly building = new Set<string>();

  constructor(
    private readonly paths: SandboxPaths,
    private readonly idPrefix: string,
    private readonly time: Time,
    private readonly onStep: CreateStepHook = () => undefined,
  ) {}

  isBuilding(path: string): boolean {
    return this.building.has(path);
  }

  /** Builds one sandbox and renames it into place; returns its id. */
  async create(ref: GroupRef): Promise<string> {
    // 32 random bits per id; a collision is retried rather than overwriting a live sandbox.
    for (let attempt = 0; attempt < 5; attempt++) {
      const id = `${this.idPrefix}${randomBytes(4).toString('hex')}`;
      const tmp = this.paths.creating(ref.name, id);
      const final = this.paths.sandbox(ref.name, id);
      try {
        await mkdir(tmp);
      } catch (e) {
        if (errno(e) === 'EEXIST') continue;
        throw fsError(`create sandbox ${final}`, e);
      }
      this.building.add(tmp);
      let placed: boolean;
      try {
        placed = await this.fill(tmp, ref, id, final);
      } finally {
        this.building.delete(tmp);
      }
      if (!placed) continue;
      await this.onStep('renamed');
      return id;
    }
    throw new FleetError('PROVIDER', `local group ${ref.name}: could not pick an unused instance id`, {
      retryable: true,
    });
  }

  /** Mark (rename) then remove; each step tolerates a previous, interrupted attempt. */
  async remove(group: string, id: string): Promise<void> {
    const live = this.paths.sandbox(group, id);
    const marked = this.paths.deleting(group, id);
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

  /**
   * Removes what interrupted creations left in the group. Only this process changes the group (the
   * state lock), so a `.creating` directory it is not building itself is dead.
   */
  async sweep(group: string): Promise<void> {
    const dir = this.paths.group(group);
    for (const entry of (await listEntries(dir)) ?? []) {
      const parsed = entry.isDirectory() ? parseEntryName(entry.name) : undefined;
      const path = join(dir, entry.name);
      if (parsed?.kind === 'creating' && !this.building.has(path)) {
        await fsStep(`remove leftover ${path}`, () => rm(path, { recursive: true, force: true }));
      } else if (parsed?.kind === 'live' && (await readInstanceFile(path)) === undefined) {
        await this.remove(group, parsed.id);
      }
    }
  }

  /** Fills the `.creating` directory and renames it; false when the id turned out to be taken. */
  private async fill(tmp: string, ref: GroupRef, id: string, final: string): Promise<boolean> {
    try {
      return await fsStep(`create sandbox ${final}`, async () => {
        await this.onStep('directory');
        await mkdir(join(tmp, WORK_DIR));
        await this.onStep('work');
        const file: LocalInstanceFile = {
          id,
          fleet: ref.fleet,
          state: 'running',
          launched_at: this.time.now().toISOString(),
        };
        await writeFlushed(join(tmp, INSTANCE_FILE), `${JSON.stringify(file, null, 2)}\n`);
        await this.onStep('instance-file');
        return await renameUnlessTaken(tmp, final);
      });
    } catch (e) {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined); // else: the next sweep
      throw e;
    }
  }
}

/** Writes and flushes a new file, so the rename that publishes it never publishes an empty file. */
async function writeFlushed(path: string, content: string): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Renames `from` to `to`; false (and `from` removed) when `to` already holds a sandbox. */
async function renameUnlessTaken(from: string, to: string): Promise<boolean> {
  try {
    await rename(from, to);
    return true;
  } catch (e) {
    if (errno(e) !== 'ENOTEMPTY' && errno(e) !== 'EEXIST') throw e;
    await rm(from, { recursive: true, force: true });
    return false;
  }
}
