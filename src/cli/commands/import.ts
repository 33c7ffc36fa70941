/**
 * `runfleet import CONFIG.toml`: GitLab Runner autoscaler runners -> fleet files, with a report of
 * what was and was not carried over. Exit 0 when every docker-autoscaler / instance runner was
 * imported; 1 when one could not be, nothing was importable, a file would be overwritten, or the
 * TOML does not parse.
 */
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { loadFleets } from '../../config/index.js';
import { ErrorCode, FleetError } from '../../errors.js';
import { importedRunnerOf } from '../../import/fleet-file.js';
import { importConfig, type PlannedFile } from '../../import/import.js';
import { renderReport } from '../../import/report.js';
import { TomlSyntaxError } from '../../import/toml-source.js';
import type { Clock } from '../../util/time.js';
import type { Io } from '../io.js';

export interface ImportOptions {
  out: string;
  /** The fleets directory plan and validate read (--dir), for the next steps shown. */
  dir: string;
  dryRun: boolean;
  force: boolean;
  region?: string;
}

/** A config.toml is a few KiB; the cap keeps a wrong path (a disk image, a log) from stalling. */
const MAX_CONFIG_BYTES = 1024 * 1024;
const AWS_REGION = /^[a-z]{2}(-[a-z]+)+-[0-9]+$/;

/**
 * The import date: SOURCE_DATE_EPOCH when set (the reproducible-builds convention, so a re-import
 * in CI gives identical files), else the clock.
 */
export function importClock(env: NodeJS.ProcessEnv = process.env): Clock {
  const epoch = env.SOURCE_DATE_EPOCH;
  if (epoch !== undefined && /^\d+$/.test(epoch)) return { now: () => new Date(Number(epoch) * 1000) };
  return { now: () => new Date() };
}

export async function importCommand(
  file: string,
  opts: ImportOptions,
  io: Io,
  clock: Clock = importClock(),
): Promise<number> {
  if (opts.region !== undefined && !AWS_REGION.test(opts.region)) {
    throw new FleetError(ErrorCode.USAGE, `--region ${JSON.stringify(opts.region)} is not an AWS region`, {
      hint: 'e.g. --region eu-west-1',
    });
  }
  const text = await readConfig(file);
  const taken = await namesTakenIn(opts.out);
  let result;
  try {
    result = importConfig({
      file,
      sourcePath: resolve(file),
      text,
      outDir: opts.out,
      schemaPath: relative(resolve(opts.out), resolve('schemas/fleet.schema.json')),
      now: clock.now(),
      ...(opts.region !== undefined && { region: opts.region }),
      takenNames: taken,
    });
  } catch (e) {
    if (!(e instanceof TomlSyntaxError)) throw e;
    io.err(e.message);
    io.err('\nNothing was written.');
    return 1;
  }
  const refused = opts.force ? [] : await refusedOverwrites(result.files);
  if (opts.dryRun) {
    for (const f of result.files) io.out(`# --- ${f.path} (would be written) ---\n${f.text}`);
  }
  io.out(renderReport(result.report));
  if (refused.length > 0) {
    for (const r of refused) io.err(`Error: ${r}`);
    io.err(
      '\nNothing was written. Move those files away, or pass --force to overwrite them (a previous import of the same runner is overwritten without --force).',
    );
    return 1;
  }
  if (opts.dryRun) {
    io.out(`\nDry run: ${result.files.length} file(s) would be written; nothing was written.`);
    return result.complete ? 0 : 1;
  }
  for (const f of result.files) await writeAtomically(f.path, f.text);
  // plan and validate read --dir (subdirectories included); name --out when it lies outside it.
  const dirFlag = relative(opts.dir, opts.out).startsWith('..') ? ` --dir ${opts.out}` : '';
  io.out(
    nextSteps(
      result.files,
      result.report.runners.map((r) => r.tokenEnv),
      dirFlag,
    ),
  );
  return result.complete ? 0 : 1;
}

async function readConfig(file: string): Promise<string> {
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new FleetError(ErrorCode.USAGE, `${file} is not a regular file`);
    if (info.size > MAX_CONFIG_BYTES) {
      throw new FleetError(ErrorCode.USAGE, `${file} is ${info.size} bytes; a config.toml is at most 1 MiB`, {
        hint: 'pass the path of GitLab Runner config.toml (often /etc/gitlab-runner/config.toml)',
      });
    }
    return await readFile(file, 'utf8');
  } catch (e) {
    if (e instanceof FleetError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new FleetError(ErrorCode.USAGE, `cannot read ${file} (${code})`, {
      hint: 'pass the path of GitLab Runner config.toml (often /etc/gitlab-runner/config.toml)',
    });
  }
}

/** Fleet names defined under `out` by files no import wrote: an imported fleet must not reuse one. */
async function namesTakenIn(out: string): Promise<Set<string>> {
  const taken = new Set<string>();
  const exists = await stat(out).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!exists) return taken;
  const loaded = await loadFleets(out);
  for (const f of loaded.files) {
    const text = await readFile(f.file, 'utf8').catch(() => '');
    if (importedRunnerOf(text) !== undefined) continue;
    for (const fleet of f.fleets) taken.add(fleet.spec.name);
  }
  return taken;
}

/** Files that exist and were not written by an import of the same runner. */
async function refusedOverwrites(files: PlannedFile[]): Promise<string[]> {
  const refused: string[] = [];
  for (const f of files) {
    let existing: string;
    try {
      existing = await readFile(f.path, 'utf8');
    } catch {
      continue;
    }
    const runner = importedRunnerOf(existing);
    if (runner === f.runner) continue;
    refused.push(
      runner === undefined
        ? `${f.path} exists and was not written by runfleet import; not overwriting it`
        : `${f.path} was imported from runner ${JSON.stringify(runner)}, not ${JSON.stringify(f.runner)}; not overwriting it`,
    );
  }
  return refused;
}

/** Through a rename, so a crash never leaves half a fleet file for the daemon to load. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(tmp, text);
    await rename(tmp, path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new FleetError(ErrorCode.USAGE, `cannot write ${path} (${code})`, {
      hint: '--out must name a directory you can write to',
    });
  }
}

function nextSteps(files: PlannedFile[], envs: (string | undefined)[], dirFlag: string): string {
  if (files.length === 0) return '\nNo fleet file was written.';
  const tokens = envs.filter((e): e is string => e !== undefined);
  return [
    '',
    ...files.map((f) => `Wrote ${f.path}`),
    '',
    'Next:',
    ...tokens.map((e) => `  export ${e}=glrt-...   # this runner's authentication token from config.toml`),
    `  runfleet${dirFlag} validate && runfleet${dirFlag} plan   # review what runfleet would change on the adopted groups`,
  ].join('\n');
}
