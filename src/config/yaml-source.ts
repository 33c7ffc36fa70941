/**
 * Reads a fleet file into its YAML documents, keeping source positions so that any JSON pointer into
 * a document can be mapped back to file:line:col.
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, type Document, type Node } from 'yaml';
import { fileIssue, libraryMessage, pointerSegments, type ConfigIssue } from './issues.js';
import { composeDocuments, documentData, MAX_SYNTAX_ERRORS, type DocumentData } from './yaml-guards.js';

/** Which part of a `key: value` pair a position should point at. */
export type PositionTarget =
  /** The value for scalars; the key for a block map or list (its first line is the key's line). */
  'auto' | 'key' | 'value';

export interface Position {
  line: number;
  col: number;
}

/** One non-empty YAML document of a fleet file. */
export interface SourceDocument {
  file: string;
  /** 0-based index among the file's documents (empty ones included), for messages. */
  index: number;
  /** The document as plain data; meaningless when `broken`. */
  data: unknown;
  /** Where the document's content starts. */
  start: Position;
  /** The document does not read as YAML. Its errors are in `syntaxErrors`, or past the file's limit. */
  broken: boolean;
  syntaxErrors: ConfigIssue[];
  /** Position of the node a JSON pointer names, or of its deepest existing ancestor. */
  locate(pointer: string, target?: PositionTarget): Position;
}

export interface SourceFile {
  file: string;
  /**
   * Problems of the whole file: not text, too deep (then there are no documents), or how many
   * syntax errors were left out.
   */
  errors: ConfigIssue[];
  /** Documents with content, in file order; `---` with nothing after it makes none. */
  documents: SourceDocument[];
  /** YAML warnings (e.g. unsupported directives); not fatal. */
  warnings: ConfigIssue[];
}

/**
 * Parses every document of `text`. Never throws: YAML errors become issues with positions, and a
 * file YAML must not be trusted with (binary, huge, nested past the stack) becomes one issue.
 */
export function parseFleetFile(file: string, text: string): SourceFile {
  const lineCounter = new LineCounter();
  const pos = (offset: number): Position => lineCounter.linePos(offset);
  const composed = composeDocuments(file, text, lineCounter);
  if ('issue' in composed) return { file, errors: [composed.issue], documents: [], warnings: [] };
  const documents: SourceDocument[] = [];
  const warnings: ConfigIssue[] = [];
  // Junk that is text (a log, a README) makes an error of every line, each quoting it.
  let room = MAX_SYNTAX_ERRORS;
  const left: number[] = [];

  composed.docs.forEach((doc, index) => {
    const issueAt = (offset: number, message: string, hint?: string): ConfigIssue => ({
      file,
      ...pos(offset),
      pointer: '',
      message,
      ...(hint !== undefined && { hint }),
    });
    for (const w of doc.warnings) warnings.push(issueAt(w.pos[0], `YAML: ${libraryMessage(w.message)}`));
    const shown = doc.errors.slice(0, room);
    room -= shown.length;
    left.push(...doc.errors.slice(shown.length).map((e) => e.pos[0]));
    const syntaxErrors = shown.map((e) =>
      issueAt(e.pos[0], `YAML syntax error: ${libraryMessage(e.message)}`),
    );
    // A document of only comments (or nothing, or `---` then comments) defines no fleet: skip it,
    // unless it is broken.
    const empty = doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null);
    if (empty && doc.errors.length === 0) return;
    const startOffset = doc.contents?.range[0] ?? doc.range[0];
    const converted: DocumentData = doc.errors.length === 0 ? documentData(doc) : { data: undefined };
    if ('error' in converted) {
      syntaxErrors.push(issueAt(converted.offset, converted.error.message, converted.error.hint));
    }
    documents.push({
      file,
      index,
      data: 'data' in converted ? converted.data : undefined,
      start: pos(startOffset),
      broken: doc.errors.length > 0 || 'error' in converted,
      syntaxErrors,
      locate: (pointer, target = 'auto') => pos(locateOffset(doc, pointer, target) ?? startOffset),
    });
  });
  const errors =
    left.length === 0
      ? []
      : [
          fileIssue(
            file,
            `${left.length} more YAML syntax error${left.length === 1 ? '' : 's'} (the first of them here)`,
            'fix the first ones: the rest often follow from them',
            pos(left[0]!),
          ),
        ];
  return { file, errors, documents, warnings };
}

/** Walks `pointer` through the document's nodes; returns the source offset to report. */
function locateOffset(doc: Document.Parsed, pointer: string, target: PositionTarget): number | undefined {
  let node: Node | null = doc.contents;
  let keyNode: Node | undefined;
  for (const seg of pointerSegments(pointer)) {
    if (isAlias(node)) node = node.resolve(doc) ?? null;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === seg);
      if (!pair) break;
      keyNode = pair.key as Node;
      node = (pair.value as Node | null) ?? null;
    } else if (isSeq(node)) {
      const item = node.items[Number(seg)] as Node | undefined;
      if (!/^\d+$/.test(seg) || item === undefined) break;
      keyNode = undefined;
      node = item;
    } else {
      break;
    }
  }
  const valueOffset = node?.range?.[0];
  const keyOffset = keyNode?.range?.[0];
  const emptyValue = node === null || (isScalar(node) && node.value === null && node.source === '');
  if (keyOffset !== undefined && (target === 'key' || emptyValue)) return keyOffset;
  if (keyOffset !== undefined && target === 'auto' && (isMap(node) || isSeq(node))) return keyOffset;
  return valueOffset ?? keyOffset;
}
