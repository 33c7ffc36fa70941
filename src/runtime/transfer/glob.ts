/**
 * Path patterns of `artifacts:paths`, `artifacts:exclude` and `cache:paths`, matched the way
 * gitlab-runner's file archiver matches them (bmatcuk/doublestar, docs/gitlab-job-api.md §6a):
 * relative to the project directory, `/` as the only separator, `*` and `?` stop at `/`, `**` is
 * any number of whole segments (also none), `[...]` / `[!...]` classes, `{a,b}` alternatives, `\`
 * escapes, and dot files are not special. picomatch does the matching with the options that make
 * it behave so (no negation, no extglobs, dots matched); a pattern that names a place outside the
 * project is refused, as gitlab-runner refuses it.
 */
import { posix } from 'node:path';
import picomatch from 'picomatch';

export type Matcher = (path: string) => boolean;

const OPTIONS: picomatch.PicomatchOptions = { dot: true, nonegate: true, noextglob: true };

/** A pattern ready to match: the project-relative form and the directory below which it can match. */
export interface PathPattern {
  /** As the job wrote it (for log lines). */
  original: string;
  /** Normalised: no leading `./`, no trailing `/`, `.` for the project directory itself. */
  pattern: string;
  /** The longest leading part without glob characters: the directory to list (`.` for all). */
  base: string;
  match: Matcher;
}

/** Why a pattern cannot be used; undefined when it can. */
export type PatternProblem = { original: string; reason: string };

/**
 * Normalises `pattern` against the project directory `root` (absolute POSIX path). Absolute
 * patterns inside `root` become relative; anything that resolves outside `root` is a problem.
 */
export function compilePattern(original: string, root: string): PathPattern | PatternProblem {
  let p = original.replace(/\\(?=[^*?[\]{}\\])/g, ''); // a `\` before a plain character means nothing
  if (p.startsWith('/')) {
    const rel = posix.relative(root, p);
    if (rel === '..' || rel.startsWith('../') || posix.isAbsolute(rel)) {
      return { original, reason: `artifact path is not a subpath of project directory: ${original}` };
    }
    p = rel === '' ? '.' : rel;
  }
  // posix.normalize collapses `a/./b`, `a//b` and `a/../b`; a glob character is never touched by it.
  p = posix.normalize(p).replace(/\/+$/, '');
  if (p === '' || p === './') p = '.';
  if (p === '..' || p.startsWith('../')) {
    return { original, reason: `artifact path is not a subpath of project directory: ${original}` };
  }
  const base = staticBase(p);
  // doublestar's `[!a]` is picomatch's `[^a]`.
  const forPicomatch = p.replace(/(^|[^\\])\[!/g, '$1[^');
  const isMatch = p === '.' ? () => true : picomatch(forPicomatch, OPTIONS);
  return { original, pattern: p, base, match: (path) => isMatch(path) };
}

export function isPatternProblem(p: PathPattern | PatternProblem): p is PatternProblem {
  return 'reason' in p;
}

/** The directory part of `pattern` before its first segment with a glob character. */
export function staticBase(pattern: string): string {
  const segments = pattern.split('/');
  const fixed: string[] = [];
  for (const s of segments) {
    if (/[*?[{\\]/.test(s)) break;
    fixed.push(s);
  }
  if (fixed.length === segments.length) return pattern; // no glob: the path itself
  return fixed.length === 0 ? '.' : fixed.join('/');
}

/** `a/b/c` → `['a', 'a/b', 'a/b/c']`. */
export function selfAndAncestors(path: string): string[] {
  const out: string[] = [];
  let i = path.indexOf('/');
  while (i >= 0) {
    out.push(path.slice(0, i));
    i = path.indexOf('/', i + 1);
  }
  out.push(path);
  return out;
}
