/**
 * Reads a fleet file into its YAML documents, keeping source positions so that any JSON pointer into
 * a document can be mapped back to file:line:col.
 */
import {
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseAllDocuments,
  type Document,
  type Node,
} from 'yaml';
import { pointerSegments, type ConfigIssue } from './issues.js';

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
  /** The document as plain data; meaningless when `syntaxErrors` is non-empty. */
  data: unknown;
  /** Where the document's content starts. */
  start: Position;
  syntaxErrors: ConfigIssue[];
  /** Position of the node a JSON pointer names, or of its deepest existing ancestor. */
  locate(pointer: string, target?: PositionTarget): Position;
}

export interface SourceFile {
  file: string;
  /** Documents with content, in file order; `---` with nothing after it makes none. */
  documents: SourceDocument[];
  /** YAML warnings (e.g. unsupported directives); not fatal. */
  warnings: ConfigIssue[];
}

/** Parses every document of `text`. Never throws: YAML errors become issues with positions. */
export function parseFleetFile(file: string, text: string): SourceFile {
  const lineCounter = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter, prettyErrors: false });
  // Input without any document comes back as an EmptyStream: an empty array with extra fields.
  const docs: Document.Parsed[] = 'empty' in parsed ? [] : parsed;
  const pos = (offset: number): Position => lineCounter.linePos(offset);
  const documents: SourceDocument[] = [];
  const warnings: ConfigIssue[] = [];

  docs.forEach((doc, index) => {
    const issueAt = (offset: number, message: string): ConfigIssue => ({
      file,
      ...pos(offset),
      pointer: '',
      message,
    });
    for (const w of doc.warnings) warnings.push(issueAt(w.pos[0], `YAML: ${w.message}`));
    const syntaxErrors = doc.errors.map((e) => issueAt(e.pos[0], `YAML syntax error: ${e.message}`));
    // A document of only comments (or nothing, or `---` then comments) defines no fleet: skip it,
    // unless it is broken.
    const empty = doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null);
    if (empty && syntaxErrors.length === 0) return;
    const startOffset = doc.contents?.range[0] ?? doc.range[0];
    documents.push({
      file,
      index,
      data: syntaxErrors.length === 0 ? doc.toJS({ maxAliasCount: 100 }) : undefined,
      start: pos(startOffset),
      syntaxErrors,
      locate: (pointer, target = 'auto') => pos(locateOffset(doc, pointer, target) ?? startOffset),
    });
  });
  return { file, documents, warnings };
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
