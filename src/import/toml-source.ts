/**
 * A GitLab Runner config.toml, parsed (smol-toml) and with a line:col for each table and key, so an
 * import error names the file, line and field. smol-toml returns plain values without positions;
 * `locateKeys` finds them with a line scan that knows TOML's headers, array tables and multi-line
 * strings. That is enough for config.toml as people write it; a key it cannot place gets its
 * table's position (or 1:1) rather than a wrong one.
 */
import { parse, TomlError } from 'smol-toml';
import { libraryMessage } from '../config/issues.js';

export interface Position {
  line: number;
  col: number;
}

export interface TomlSource {
  file: string;
  data: Record<string, unknown>;
  /** Position of a concrete path such as `runners[0].autoscaler.policy[1].idle_time`. */
  locate(path: string): Position;
}

/** A config.toml that does not parse: `file:line:col: message`, never the offending text. */
export class TomlSyntaxError extends Error {
  constructor(
    readonly file: string,
    readonly position: Position,
    readonly reason: string,
  ) {
    super(`${file}:${position.line}:${position.col}: ${reason}`);
    this.name = 'TomlSyntaxError';
  }
}

/** @throws TomlSyntaxError */
export function parseConfigToml(file: string, text: string): TomlSource {
  let data: Record<string, unknown>;
  try {
    data = parse(text) as Record<string, unknown>;
  } catch (e) {
    if (!(e instanceof TomlError)) throw e;
    // smol-toml appends a code excerpt to its message: that excerpt may be the token's line.
    const first = e.message.split('\n')[0] ?? 'invalid TOML';
    const reason = libraryMessage(first.replace(/^Invalid TOML document:\s*/, ''));
    throw new TomlSyntaxError(file, { line: e.line, col: e.column }, `TOML syntax error: ${reason}`);
  }
  const positions = locateKeys(text);
  return {
    file,
    data,
    locate(path) {
      for (let p = path; p !== ''; p = parentPath(p)) {
        const at = positions.get(p);
        if (at) return at;
      }
      return { line: 1, col: 1 };
    },
  };
}

function parentPath(path: string): string {
  const cut = Math.max(path.lastIndexOf('.'), path.lastIndexOf('['));
  return cut <= 0 ? '' : path.slice(0, cut);
}

const HEADER = /^\s*(\[\[?)\s*([^\]#]+?)\s*\]\]?\s*(#.*)?$/;
const KEY = /^(\s*)((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=/;

const unquote = (segment: string) => segment.trim().replace(/^["']|["']$/g, '');
const splitKey = (dotted: string) => dotted.split('.').map(unquote);

/** Positions of every table header and key, by concrete path (`runners[0].docker.image`). */
export function locateKeys(text: string): Map<string, Position> {
  const out = new Map<string, Position>();
  /** The latest index of each array table, by its plain path (`runners`, `runners.autoscaler.policy`). */
  const latest = new Map<string, number>();
  const counts = new Map<string, number>();
  let table = '';
  let inMultiline: string | undefined;
  text.split(/\r?\n/).forEach((line, i) => {
    if (inMultiline !== undefined) {
      if (countOf(line, inMultiline) % 2 === 1) inMultiline = undefined;
      return;
    }
    const header = HEADER.exec(line);
    if (header && !KEY.test(line)) {
      const segments = splitKey(header[2] ?? '');
      const isArray = header[1] === '[[';
      table = concrete(segments, latest, isArray ? segments.length - 1 : segments.length);
      if (isArray) {
        const plain = segments.join('.');
        const n = counts.get(table + '\0' + plain) ?? 0;
        counts.set(table + '\0' + plain, n + 1);
        // A new [[runners]] starts fresh [[runners.autoscaler.policy]] counts (keyed by parent path).
        latest.set(plain, n);
        table = `${table === '' ? '' : table + '.'}${segments[segments.length - 1]}[${n}]`;
      }
      out.set(table, { line: i + 1, col: line.indexOf('[') + 1 });
      return;
    }
    const key = KEY.exec(line);
    if (!key) return;
    const path = [table, ...splitKey(key[2] ?? '')].filter((s) => s !== '').join('.');
    out.set(path, { line: i + 1, col: (key[1] ?? '').length + 1 });
    const rest = line.slice(key[0].length);
    for (const quote of ['"""', "'''"]) {
      if (countOf(rest, quote) % 2 === 1) inMultiline = quote;
    }
  });
  return out;
}

/** `segments[0..upto)` as a concrete path: array tables get their latest index. */
function concrete(segments: string[], latest: Map<string, number>, upto: number): string {
  let out = '';
  for (let i = 0; i < upto; i++) {
    out += (out === '' ? '' : '.') + segments[i];
    const index = latest.get(segments.slice(0, i + 1).join('.'));
    if (index !== undefined) out += `[${index}]`;
  }
  return out;
}

function countOf(line: string, needle: string): number {
  let n = 0;
  for (let i = line.indexOf(needle); i >= 0; i = line.indexOf(needle, i + needle.length)) n++;
  return n;
}
