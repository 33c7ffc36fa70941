/**
 * Reads fleet files from disk: every `*.yaml` / `*.yml` under a directory (subdirectories included,
 * hidden entries skipped), in sorted path order so results and "defined first at" are stable.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, FleetError } from '../errors.js';
import { decodeFleetFile, notRegularFile, oversize } from './file-text.js';
import { compareIssues, fileIssue, type ConfigIssue } from './issues.js';
import { validateFleetTexts, type FleetText, type LoadResult } from './validate.js';

const FLEET_FILE = /\.ya?ml$/i;

/**
 * Loads, validates and normalises every fleet under `dir` (or in `dir` itself when it is a file).
 * Paths in results are `join(dir, relative)`, so they read as the caller gave `dir`.
 * An empty directory gives zero fleets and no error. Problems in files are returned, not thrown.
 * @throws FleetError(CONFIG_INVALID) when `dir` does not exist or cannot be read.
 */
export async function loadFleets(dir: string): Promise<LoadResult> {
  const paths = await fleetFilePaths(dir);
  const texts: FleetText[] = [];
  const refused: ConfigIssue[] = [];
  for (const file of paths) {
    const read = await readFleetFile(file);
    if ('issue' in read) refused.push(read.issue);
    else texts.push({ file, text: read.text });
  }
  const result = validateFleetTexts(texts);
  if (refused.length === 0) return result;
  const files = [...result.files, ...refused.map((i) => ({ file: i.file, fleets: [], errors: [i] }))];
  files.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  return { ...result, files, errors: [...result.errors, ...refused].sort(compareIssues) };
}

/** A file's text, or why it is not read: a device or fifo would block, a huge file would stall. */
async function readFleetFile(file: string): Promise<{ text: string } | { issue: ConfigIssue }> {
  try {
    const info = await stat(file);
    if (!info.isFile()) return { issue: notRegularFile(file) };
    const tooBig = oversize(file, info.size);
    if (tooBig) return { issue: tooBig };
    // The size is checked again on the bytes read: the file may have grown in between.
    return decodeFleetFile(file, await readFile(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'unknown error';
    return { issue: fileIssue(file, `cannot read fleet file (${code})`) };
  }
}

async function fleetFilePaths(dir: string): Promise<string[]> {
  let info;
  try {
    info = await stat(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FleetError(
      ErrorCode.CONFIG_INVALID,
      code === 'ENOENT'
        ? `fleet directory ${dir} does not exist`
        : `cannot read fleet directory ${dir} (${code})`,
      { hint: 'pass --dir <path> to point at the directory holding your fleet files', cause: e },
    );
  }
  if (!info.isDirectory()) return [dir];
  const out: string[] = [];
  await walk(dir, out);
  return out.sort();
}

async function walk(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await walk(path, out);
    else if (FLEET_FILE.test(entry.name)) out.push(path);
  }
}
