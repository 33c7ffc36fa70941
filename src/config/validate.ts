/**
 * From fleet file texts to desired fleets: parse (YAML with positions) -> schema -> rules ->
 * normalise. Pure (no I/O): `load.ts` reads the files, tests pass texts directly.
 */
import type { DesiredFleet } from '../model/fleet.js';
import type { WrittenFleet } from './fleet.generated.js';
import { compareIssues, type ConfigIssue } from './issues.js';
import { normalizeFleet } from './normalize.js';
import { CROSS_FLEET_RULES, FLEET_RULES, type FleetEntry, type Raw } from './rules.js';
import { isAtOrBelow, schemaIssues, type IssueDraft } from './schema.js';
import { parseFleetFile, type SourceDocument } from './yaml-source.js';

export interface FleetText {
  /** Path used in messages, as the caller wants it shown. */
  file: string;
  text: string;
}

/** One file's outcome, so a daemon can keep the last good fleets of a file that broke. */
export interface FileResult {
  file: string;
  /** Fleets of this file that have no error (a file can mix good and bad documents). */
  fleets: DesiredFleet[];
  errors: ConfigIssue[];
  /**
   * The file holds no text at all (nothing but whitespace). `plan` reads that as "no fleets"; the
   * daemon does not trust it for a file that defined fleets (an editor truncates a file before it
   * writes the new text, `fleet-config.ts`).
   */
  empty?: true;
}

export interface LoadResult {
  /** Every fleet without an error, in file order. Incomplete whenever `errors` is non-empty. */
  fleets: DesiredFleet[];
  /** All errors of all files at once, sorted by file and position. */
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
  files: FileResult[];
}

interface DocumentState {
  doc: SourceDocument;
  drafts: IssueDraft[];
}

/**
 * Validates and normalises every fleet in `texts`. Cross-file rules (unique names, one fleet per
 * Auto Scaling group) make every conflicting definition an error, so file order decides nothing.
 */
export function validateFleetTexts(texts: readonly FleetText[]): LoadResult {
  const sources = texts.map((t) => parseFleetFile(t.file, t.text));
  const states: DocumentState[] = [];
  const entries: FleetEntry[] = [];
  const stateOf = new Map<FleetEntry, DocumentState>();

  for (const doc of sources.flatMap((s) => s.documents)) {
    const state: DocumentState = { doc, drafts: [] };
    states.push(state);
    if (doc.broken) continue;
    state.drafts = checkDocument(doc.data);
    if (isObject(doc.data)) {
      const entry: FleetEntry = { file: doc.file, fleet: doc.data, locate: (p) => doc.locate(p) };
      entries.push(entry);
      stateOf.set(entry, state);
    }
  }
  for (const rule of CROSS_FLEET_RULES) {
    rule(entries, (entry, draft) => stateOf.get(entry)?.drafts.push(draft));
  }

  const files = new Map<string, FileResult>(
    sources.map((s) => [s.file, { file: s.file, fleets: [], errors: [...s.errors] }]),
  );
  for (const t of texts) if (t.text.trim() === '') files.get(t.file)!.empty = true;
  const warnings = sources.flatMap((s) => s.warnings);
  for (const { doc, drafts } of states) {
    const file = files.get(doc.file)!;
    const issues = drafts.map((d) => ({ severity: d.severity, issue: toIssue(doc, d) }));
    const errors = [...doc.syntaxErrors, ...issues.filter((i) => i.severity === 'error').map((i) => i.issue)];
    warnings.push(...issues.filter((i) => i.severity === 'warning').map((i) => i.issue));
    file.errors.push(...errors);
    if (!doc.broken && errors.length === 0) {
      file.fleets.push({
        spec: normalizeFleet(doc.data as WrittenFleet),
        source: { file: doc.file, line: doc.start.line },
      });
    }
  }
  const fileResults = [...files.values()];
  for (const f of fileResults) f.errors.sort(compareIssues);
  return {
    fleets: fileResults.flatMap((f) => f.fleets),
    errors: fileResults.flatMap((f) => f.errors).sort(compareIssues),
    warnings: warnings.sort(compareIssues),
    files: fileResults,
  };
}

/** Convenience for tests and tools: one file's text. */
export function loadFleetsFromText(file: string, text: string): LoadResult {
  return validateFleetTexts([{ file, text }]);
}

/** Schema errors plus the fleet rules, with rule messages replacing schema noise where they say so. */
function checkDocument(data: unknown): IssueDraft[] {
  const schema = schemaIssues(data);
  if (!isObject(data)) return schema;
  const rules: IssueDraft[] = [];
  for (const rule of FLEET_RULES) rule(data, (d) => rules.push(d));
  const replaced = rules.filter((r) => r.replacesSchemaErrors).map((r) => r.pointer);
  return [...schema.filter((s) => !replaced.some((p) => isAtOrBelow(s.pointer, p))), ...rules];
}

function toIssue(doc: SourceDocument, draft: IssueDraft): ConfigIssue {
  const pos = doc.locate(draft.pointer, draft.target);
  return {
    file: doc.file,
    line: pos.line,
    col: pos.col,
    pointer: draft.pointer,
    message: draft.message,
    ...(draft.hint !== undefined && { hint: draft.hint }),
  };
}

function isObject(v: unknown): v is Raw {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
