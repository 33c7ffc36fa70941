/**
 * One TOML table being converted: typed reads that remember which keys were used, so every key
 * left over lands in the report as "not carried over" (nothing is dropped silently), and a value of
 * the wrong type becomes an error naming file:line:col and the setting.
 */
import type { TomlSource } from './toml-source.js';

export type Table = Record<string, unknown>;

export const isTable = (v: unknown): v is Table =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date);

export class Section {
  private readonly taken = new Set<string>();

  constructor(
    readonly source: TomlSource,
    /** As GitLab's docs name it: `runners.autoscaler.policy[0]`. */
    readonly name: string,
    /** As positions are keyed: `runners[2].autoscaler.policy[0]`. */
    readonly path: string,
    readonly table: Table,
    /** Collects type errors; the runner is not imported when there is one. */
    readonly errors: string[],
  ) {}

  setting(key: string): string {
    // The root table (config.toml's global settings) has no name: its keys stand alone.
    return this.name ? `${this.name}.${key}` : key;
  }

  has(key: string): boolean {
    return this.table[key] !== undefined;
  }

  /** `file:line:col: message` for a key of this table. */
  problem(key: string | undefined, message: string): string {
    const path = key === undefined ? this.path : this.path ? `${this.path}.${key}` : key;
    const at = this.source.locate(path);
    return `${this.source.file}:${at.line}:${at.col}: ${message}`;
  }

  raw(key: string): unknown {
    this.taken.add(key);
    return this.table[key];
  }

  private typed<T>(key: string, want: string, ok: (v: unknown) => v is T): T | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (ok(v)) return v;
    this.errors.push(this.problem(key, `${this.setting(key)} must be ${want}`));
    return undefined;
  }

  string(key: string): string | undefined {
    return this.typed(key, 'a string', (v): v is string => typeof v === 'string');
  }

  integer(key: string): number | undefined {
    return this.typed(key, 'an integer', (v): v is number => Number.isInteger(v));
  }

  number(key: string): number | undefined {
    return this.typed(key, 'a number', (v): v is number => typeof v === 'number' && Number.isFinite(v));
  }

  boolean(key: string): boolean | undefined {
    return this.typed(key, 'true or false', (v): v is boolean => typeof v === 'boolean');
  }

  strings(key: string): string[] | undefined {
    return this.typed(key, 'a list of strings', (v): v is string[] =>
      Array.isArray(v) ? v.every((s) => typeof s === 'string') : false,
    );
  }

  /** A sub-table, or undefined; a non-table value is a type error. */
  sub(key: string): Section | undefined {
    const v = this.typed(key, 'a table', isTable);
    return v === undefined
      ? undefined
      : new Section(this.source, this.setting(key), `${this.path}.${key}`, v, this.errors);
  }

  /** An array of tables (`[[runners.autoscaler.policy]]`), one Section each. */
  subs(key: string): Section[] {
    const v = this.typed(key, 'a list of tables', (x): x is Table[] => Array.isArray(x) && x.every(isTable));
    return (v ?? []).map(
      (t, i) =>
        new Section(this.source, `${this.setting(key)}[${i}]`, `${this.path}.${key}[${i}]`, t, this.errors),
    );
  }

  /** Keys present but never read, in file order. */
  leftover(): string[] {
    return Object.keys(this.table).filter((k) => !this.taken.has(k) && this.table[k] !== undefined);
  }

  /** Marks a key as dealt with (reported elsewhere) without reading it. */
  skip(key: string): void {
    this.taken.add(key);
  }
}
