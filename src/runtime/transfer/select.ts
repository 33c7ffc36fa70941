/**
 * Which files of a project directory on the instance an artifact or cache takes (gitlab-runner's
 * file archiver, docs/gitlab-job-api.md §6a): one command on the instance lists the directories
 * the patterns can reach (`find`, the POSIX one) and, with `untracked`, `git ls-files -o`; the
 * patterns are matched here, on the manager. A pattern that matches a directory takes everything
 * below it; every path, each on its own, is then checked against the exclude patterns.
 */
import type { Connector } from '../connectors/connector.js';
import { shellQuote } from '../script/shell-quote.js';
import { compilePattern, isPatternProblem, selfAndAncestors, type PathPattern } from './glob.js';
import { TransferError } from './errors.js';

export interface SelectOptions {
  /** Absolute POSIX path of the project directory on the instance. */
  root: string;
  /** Patterns (relative to `root`) whose matches are taken with everything below them. */
  paths: string[];
  /** Patterns of paths to leave out. */
  exclude?: string[];
  /** Also take the files git does not track (`git ls-files -o`, ignored files included). */
  untracked?: boolean;
  signal?: AbortSignal;
}

export interface PatternCount {
  pattern: string;
  /** Files and directories taken for this pattern (excluded ones not counted). */
  found: number;
}

export interface Selection {
  root: string;
  /** Project-relative paths to archive, sorted (a directory before what it holds), no duplicates. */
  paths: string[];
  /** The directories among `paths` (archived as entries of their own). */
  directories: ReadonlySet<string>;
  /** One per `paths` pattern, in order. */
  patterns: PatternCount[];
  /** `git ls-files -o` files taken; undefined without `untracked`. */
  untracked?: number;
  /** How many paths each exclude pattern left out (only patterns that left something out). */
  excluded: { pattern: string; count: number }[];
  /** Patterns refused, `git` missing, names that cannot be archived: one line each. */
  warnings: string[];
}

/** Records of the listing: `d<path>` / `f<path>` (NUL-terminated), then `u` and git's own records. */
const UNTRACKED_MARK = 'u';

/** The listing command: POSIX sh, find and printf, and git only for `untracked`. */
export function listingCommand(root: string, bases: string[], untracked: boolean): string {
  const finds = bases
    .map((b) => {
      const q = shellQuote(b === '.' ? '.' : `./${b}`);
      return (
        `if [ -e ${q} ] || [ -h ${q} ]; then find ${q} ` +
        `\\( -type d -exec printf 'd%s\\0' {} + \\) -o -exec printf 'f%s\\0' {} +; fi`
      );
    })
    .join('\n');
  const git = untracked
    ? `\nprintf '${UNTRACKED_MARK}\\0'\ngit ls-files -o -z || echo "untracked: git ls-files failed" >&2`
    : '';
  return `cd ${shellQuote(root)} || exit 3\n${finds}${git}\n`;
}

/** Lists and matches. A missing `root` matches nothing (with a warning); rejects (SSH_CONNECT) only when the instance fails. */
export async function selectFiles(connector: Connector, opts: SelectOptions): Promise<Selection> {
  const warnings: string[] = [];
  const patterns: PathPattern[] = [];
  const patternSlots: (PathPattern | undefined)[] = [];
  for (const p of opts.paths) {
    const c = compilePattern(p, opts.root);
    if (isPatternProblem(c)) {
      warnings.push(c.reason);
      patternSlots.push(undefined);
    } else {
      patterns.push(c);
      patternSlots.push(c);
    }
  }
  const excludes: PathPattern[] = [];
  for (const p of opts.exclude ?? []) {
    const c = compilePattern(p, opts.root);
    if (isPatternProblem(c)) warnings.push(`isExcluded: ${c.reason}`);
    else excludes.push(c);
  }
  const bases = coveringBases(patterns.map((p) => p.base));
  const listing = bases.length > 0 || opts.untracked ? await list(connector, opts, bases) : undefined;

  const entries = new Map<string, boolean>(); // path → is a directory
  const untrackedPaths: string[] = [];
  let inUntracked = false;
  for (const record of listing?.records ?? []) {
    if (inUntracked) {
      if (record) untrackedPaths.push(stripDot(record));
      continue;
    }
    if (record === UNTRACKED_MARK) {
      inUntracked = true;
      continue;
    }
    const kind = record[0];
    const path = stripDot(record.slice(1));
    if (kind === 'd' || kind === 'f') entries.set(path, kind === 'd');
  }
  if (listing?.missingRoot)
    warnings.push(`${opts.root}: the project directory does not exist on the instance`);
  else if (listing?.stderr.includes('untracked: git ls-files failed')) {
    warnings.push('untracked: git ls-files -o failed (is git installed on the instance?)');
  }

  const taken = new Set<string>();
  const excludedCounts = new Map<string, number>();
  const isExcluded = (path: string): boolean => {
    for (const x of excludes) {
      if (x.match(path)) {
        excludedCounts.set(x.original, (excludedCounts.get(x.original) ?? 0) + 1);
        return true;
      }
    }
    return false;
  };

  const counts: PatternCount[] = [];
  for (let i = 0; i < opts.paths.length; i++) {
    const p = patternSlots[i];
    if (!p) continue;
    const matched = new Set<string>();
    for (const path of entries.keys()) if (p.match(path)) matched.add(path);
    let found = 0;
    for (const path of entries.keys()) {
      if (!selfAndAncestors(path).some((a) => matched.has(a)) && !(p.pattern === '.' && path !== '.'))
        continue;
      if (isExcluded(path)) continue;
      found++;
      if (path !== '.') taken.add(path);
    }
    counts.push({ pattern: p.pattern, found });
  }

  let untracked: number | undefined;
  if (opts.untracked) {
    untracked = 0;
    for (const path of untrackedPaths) {
      if (isExcluded(path)) continue;
      untracked++;
      taken.add(path);
    }
  }

  const paths: string[] = [];
  for (const path of [...taken].sort(byPath)) {
    if (path.includes('\n')) {
      warnings.push(`${JSON.stringify(path)}: a name with a newline cannot be archived, skipped`);
      continue;
    }
    paths.push(path);
  }
  const directories = new Set(paths.filter((p) => entries.get(p) === true));
  return {
    root: opts.root,
    paths,
    directories,
    patterns: counts,
    ...(untracked !== undefined ? { untracked } : {}),
    excluded: [...excludedCounts].map(([pattern, count]) => ({ pattern, count })),
    warnings,
  };
}

/** gitlab-runner's log lines for a selection (what each pattern found, what was excluded). */
export function selectionLog(sel: Selection): { level: 'info' | 'warning'; text: string }[] {
  const lines: { level: 'info' | 'warning'; text: string }[] = [];
  for (const w of sel.warnings) lines.push({ level: 'warning', text: w });
  for (const p of sel.patterns) {
    lines.push(
      p.found === 0
        ? {
            level: 'warning',
            text: `${p.pattern}: no matching files. Ensure that the artifact path is relative to the working directory (${sel.root})`,
          }
        : { level: 'info', text: `${p.pattern}: found ${p.found} matching artifact files and directories` },
    );
  }
  if (sel.untracked !== undefined) {
    lines.push(
      sel.untracked === 0
        ? { level: 'warning', text: 'untracked: no files' }
        : { level: 'info', text: `untracked: found ${sel.untracked} files` },
    );
  }
  for (const x of sel.excluded)
    lines.push({ level: 'info', text: `${x.pattern}: excluded ${x.count} files` });
  return lines;
}

/** Sorts so that a directory comes right before what it holds (`a`, `a/b`, `a-b`). */
export function byPath(a: string, b: string): number {
  const sa = a.split('/');
  const sb = b.split('/');
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) {
    if (sa[i] !== sb[i]) return (sa[i] as string) < (sb[i] as string) ? -1 : 1;
  }
  return sa.length - sb.length;
}

/** Drops bases below another base: one `find` per directory tree. */
function coveringBases(bases: string[]): string[] {
  const unique = [...new Set(bases)].sort(byPath);
  if (unique.includes('.')) return ['.'];
  const out: string[] = [];
  for (const b of unique) {
    if (!out.some((o) => b === o || b.startsWith(`${o}/`))) out.push(b);
  }
  return out;
}

function stripDot(path: string): string {
  if (path === '.' || path === './') return '.';
  return path.startsWith('./') ? path.slice(2) : path;
}

async function list(
  connector: Connector,
  opts: SelectOptions,
  bases: string[],
): Promise<{ records: string[]; stderr: string; missingRoot?: boolean }> {
  const chunks: Buffer[] = [];
  let stderr = '';
  const res = await connector.exec(listingCommand(opts.root, bases, opts.untracked ?? false), {
    onStdout: (c) => chunks.push(c),
    onStderr: (c) => {
      if (stderr.length < 4096) stderr += c.toString();
    },
    signal: opts.signal,
  });
  if (res.aborted) throw new TransferError('listing the files was stopped');
  // No project directory (sources never fetched): nothing matches, as gitlab-runner would find.
  if (res.exitCode === 3) return { records: [], stderr, missingRoot: true };
  const text = Buffer.concat(chunks).toString('utf8');
  const records = text.split('\0');
  if (records.at(-1) === '') records.pop();
  return { records, stderr };
}
