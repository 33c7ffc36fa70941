/**
 * What the daemon plans with, from the fleet files and the store. Keeps each file's last good
 * fleets: an invalid edit leaves that file's fleets running on their previous definition and never
 * touches their instances. Decides, per fleet, whether the file's definition is applied
 * (`apply: auto`) or only its applied one is run (`apply: manual`, awaiting a reviewed apply).
 */
import { fileIssue, type ConfigIssue, type LoadResult } from '../config/index.js';
import type { DesiredFleet, Fleet } from '../model/fleet.js';
import type { AppliedFleet } from '../model/observed.js';
import { diffSpecs } from '../plan/index.js';

/** One fleet as the daemon runs it. */
export interface FleetView {
  name: string;
  /** The definition the daemon plans with; undefined when it only tears the fleet down. */
  desired?: DesiredFleet;
  /** The file's definition (or the file's last good one), if any file defines the fleet. */
  file?: DesiredFleet;
  mode: 'auto' | 'manual';
  /**
   * `active`: running on its file definition (auto) or its applied one (manual);
   * `held`: its file is invalid, running on the last good or applied definition;
   * `removing`: its file is gone (auto): instances drain, then the group is deleted;
   * `unapplied`: manual and never applied: the daemon does not touch it.
   */
  status: 'active' | 'held' | 'removing' | 'unapplied';
  /** Manual fleets: changes between the file and the applied definition, awaiting `runfleet apply`. */
  pendingChanges: number;
}

export interface ConfigView {
  fleets: FleetView[];
  /** The definitions to plan with (the `desired` of every fleet that has one). */
  desired: DesiredFleet[];
  /** Fleets whose configuration changes the daemon must not apply (manual, held). */
  capacityOnly: Set<string>;
  errors: ConfigIssue[];
}

/** The definitions `view` plans with, by fleet name. */
export function specsByName(view: ConfigView): Map<string, Fleet> {
  return new Map(view.desired.map((d) => [d.spec.name, d.spec]));
}

/** Applied fleets that no file defines are shown with this source. */
const APPLIED_SOURCE = { file: '(state store)', line: 0 };

export class FleetConfig {
  private readonly lastGood = new Map<string, DesiredFleet[]>();
  private errorsByFile = new Map<string, ConfigIssue[]>();
  /** A broken file the daemon never saw valid: it might define any applied fleet. */
  private unknownOwnership = false;
  private readonly approved = new Set<string>();

  /** Takes a fresh load of the fleets directory. Returns the files whose errors changed. */
  update(result: LoadResult): { errorFiles: string[] } {
    const present = new Set(result.files.map((f) => f.file));
    for (const file of [...this.lastGood.keys()]) if (!present.has(file)) this.lastGood.delete(file);
    const errorsByFile = new Map<string, ConfigIssue[]>();
    this.unknownOwnership = false;
    for (const f of result.files) {
      if (f.empty && (this.lastGood.get(f.file)?.length ?? 0) > 0) {
        // Caught between an editor's truncate and its write (or emptied by hand): tearing the
        // file's fleets down on that reading would lose them. They stay until the file says more.
        errorsByFile.set(f.file, [
          fileIssue(
            f.file,
            'fleet file is empty; its fleets keep their last good definition',
            'an editor may still be writing it; to remove its fleets, delete the file (or leave a comment in it)',
          ),
        ]);
      } else if (f.errors.length === 0) {
        this.lastGood.set(f.file, f.fleets);
      } else {
        errorsByFile.set(f.file, f.errors);
        if (!this.lastGood.has(f.file)) this.unknownOwnership = true;
      }
    }
    this.errorsByFile = errorsByFile;
    return { errorFiles: [...errorsByFile.keys()].sort() };
  }

  errors(): ConfigIssue[] {
    return [...this.errorsByFile.values()].flat();
  }

  errorsFor(file: string): ConfigIssue[] {
    return this.errorsByFile.get(file) ?? [];
  }

  /** Lets the file definition of a manual fleet through once (`POST /v1/fleets/:name/approve`). */
  approve(name: string): void {
    this.approved.add(name);
  }

  /** Called once the approved definition is applied. */
  consumeApproval(name: string): void {
    this.approved.delete(name);
  }

  /**
   * The fleets to plan with. `owns` (several managers, README "Several managers") leaves out the
   * fleets this manager does not own, from the files and from `applied` alike, in the same turn:
   * a fleet seen applied but not in the files would be planned for deletion.
   */
  view(applied: readonly AppliedFleet[], owns: (fleet: string) => boolean = () => true): ConfigView {
    const fromFiles = new Map<string, { fleet: DesiredFleet; held: boolean }>();
    for (const [file, fleets] of this.lastGood) {
      const held = this.errorsByFile.has(file);
      for (const fleet of fleets) if (owns(fleet.spec.name)) fromFiles.set(fleet.spec.name, { fleet, held });
    }
    const appliedByName = new Map(applied.filter((a) => owns(a.name)).map((a) => [a.name, a]));
    const names = [...new Set([...fromFiles.keys(), ...appliedByName.keys()])].sort();
    const fleets: FleetView[] = [];
    for (const name of names) {
      fleets.push(this.fleetView(name, fromFiles.get(name), appliedByName.get(name)));
    }
    const capacityOnly = new Set(
      fleets
        .filter((f) => f.status === 'held' || (f.mode === 'manual' && f.desired !== f.file))
        .map((f) => f.name),
    );
    return {
      fleets,
      desired: fleets.flatMap((f) => (f.desired ? [f.desired] : [])),
      capacityOnly,
      errors: this.errors(),
    };
  }

  private fleetView(
    name: string,
    fromFile: { fleet: DesiredFleet; held: boolean } | undefined,
    applied: AppliedFleet | undefined,
  ): FleetView {
    const file = fromFile?.fleet;
    const mode = file?.spec.apply ?? applied?.spec.apply ?? 'auto';
    const asApplied = (source = file?.source ?? APPLIED_SOURCE): DesiredFleet | undefined =>
      applied ? { spec: applied.spec, source } : undefined;
    const base = { name, mode, pendingChanges: 0 } as const;
    if (!file) {
      // No file defines it. With a broken file we have never read, it may be defined there: keep it.
      if (this.unknownOwnership || mode === 'manual') {
        const desired = asApplied();
        return {
          ...base,
          status: this.unknownOwnership ? 'held' : 'active',
          ...(desired ? { desired } : {}),
        };
      }
      return { ...base, status: 'removing' };
    }
    if (fromFile.held) {
      const desired = file ?? asApplied();
      return { ...base, file, desired, status: 'held' };
    }
    if (mode === 'auto' || this.approved.has(name)) return { ...base, file, desired: file, status: 'active' };
    if (!applied) return { ...base, file, status: 'unapplied' };
    const pendingChanges = diffSpecs(applied.spec, file.spec).changes.length;
    return { ...base, file, desired: asApplied(), status: 'active', pendingChanges };
  }
}
