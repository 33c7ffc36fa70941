/**
 * Problems found in fleet files, each pinned to file:line:col and to a JSON pointer into the fleet.
 */

/** One error or warning in a fleet file. Never holds a secret value. */
export interface ConfigIssue {
  /** The file path as the loader was given it (relative to the cwd when the directory was). */
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
  /** JSON pointer into the fleet document (`/policy/0/idle_count`); `` for a whole document or file. */
  pointer: string;
  message: string;
  hint?: string;
}

/** An issue about a whole file (or a position in it that no JSON pointer names). */
export function fileIssue(
  file: string,
  message: string,
  hint?: string,
  at: { line: number; col: number } = { line: 1, col: 1 },
): ConfigIssue {
  return { file, ...at, pointer: '', message, ...(hint !== undefined && { hint }) };
}

/** `path:line:col: message (at /json/pointer)`, then `\n  hint: ...` when there is a hint. */
export function formatIssue(issue: ConfigIssue): string {
  const at = issue.pointer === '' ? '' : ` (at ${issue.pointer})`;
  const head = `${issue.file}:${issue.line}:${issue.col}: ${issue.message}${at}`;
  return issue.hint === undefined ? head : `${head}\n  hint: ${issue.hint}`;
}

/** Stable order: by file, then position, then message. */
export function compareIssues(a: ConfigIssue, b: ConfigIssue): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  if (a.line !== b.line) return a.line - b.line;
  if (a.col !== b.col) return a.col - b.col;
  return a.message < b.message ? -1 : a.message > b.message ? 1 : 0;
}

/** Splits a JSON pointer into unescaped segments (`/a~1b/0` -> `['a/b', '0']`). */
export function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Builds a JSON pointer from segments, escaping `~` and `/`. */
export function toPointer(segments: readonly (string | number)[]): string {
  return segments.map((s) => '/' + String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

/** The field path operators read in messages: `/policy/0/idle_count` -> `policy[0].idle_count`. */
export function fieldPath(pointer: string): string {
  let out = '';
  for (const seg of pointerSegments(pointer)) {
    out += /^\d+$/.test(seg) ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  }
  return out === '' ? 'fleet' : out;
}

// GitLab token prefixes (runner auth, personal/project/group access, legacy registration, CI job).
const TOKEN_PREFIXES = 'glrt-|glpat-|gldt-|glptt-|glcbt-|glimt-|GR1348941';
const TOKEN_LIKE = new RegExp(`^(${TOKEN_PREFIXES})`);
const TOKEN_ANYWHERE = new RegExp(`(${TOKEN_PREFIXES})[\\w.-]*`, 'g');

/** True when a string looks like a GitLab token: such values are never quoted back. */
export function looksLikeToken(value: string): boolean {
  return TOKEN_LIKE.test(value.trim());
}

/**
 * A message from a library that may quote the file (the YAML parser echoes unexpected tokens): on
 * one line, at most 120 characters, with anything token-like replaced.
 */
export function libraryMessage(message: string): string {
  const text = message.replace(/\s*\n\s*/g, ' ').replace(TOKEN_ANYWHERE, '(redacted token)');
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** Quotes a user value for a message, redacting anything that looks like a secret. */
export function quoteValue(value: unknown): string {
  if (typeof value === 'string' && looksLikeToken(value)) return '(redacted token)';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? text.slice(0, 57) + '..."' : text;
}
