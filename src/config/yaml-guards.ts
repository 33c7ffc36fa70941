/**
 * The limits YAML is read under, so that a hostile or broken file costs one short error for that
 * file and nothing else: not text or too big (file-text.ts), nested deeper than the stack allows,
 * aliases that multiply, error messages that echo the file back.
 */
import { Composer, Lexer, Parser, visit, type CST, type Document, type LineCounter } from 'yaml';
import { textIssue } from './file-text.js';
import { fileIssue, libraryMessage, type ConfigIssue } from './issues.js';

/**
 * A fleet needs about six levels (policy, a list item, periods, a period); 64 is far above that and
 * far below what the YAML composer and the recursive steps after it (toJS, schema, rules) can take.
 */
export const MAX_NESTING = 64;
/** Syntax errors shown per file: past a few, the rest follow from the first ones. */
export const MAX_SYNTAX_ERRORS = 10;
/** Alias expansions per document, as the YAML library counts them. */
const MAX_ALIAS_COUNT = 100;

const COLLECTIONS = new Set(['block-map', 'block-seq', 'flow-collection']);

/** `parseAllDocuments(text)` with the limits; never throws. */
export function composeDocuments(
  file: string,
  text: string,
  lineCounter: LineCounter,
): { docs: Document.Parsed[] } | { issue: ConfigIssue } {
  const refused = textIssue(file, text);
  if (refused) return { issue: refused };
  try {
    const tokens = parseTokens(text, lineCounter);
    if (!Array.isArray(tokens)) {
      return {
        issue: fileIssue(
          file,
          `YAML nests more than ${MAX_NESTING} levels deep here`,
          'a fleet needs a few levels of nesting; look for an unclosed [ or {, or a generated file',
          lineCounter.linePos(tokens.tooDeepAt),
        ),
      };
    }
    return { docs: [...new Composer().compose(tokens)] };
  } catch (e) {
    const hint = 'this is a runfleet bug; please report it, with the file if you can';
    return { issue: fileIssue(file, `cannot parse this file (${libraryMessage(errorText(e))})`, hint) };
  }
}

/**
 * The YAML token tree of `text`, as `new Parser().parse(text)` gives it, or the offset of the first
 * collection nested deeper than MAX_NESTING. The parser keeps an explicit stack of open nodes;
 * watching it stops at once, where a megabyte of `[` would take seconds and a gigabyte to parse,
 * and the composer would then overflow at a depth (and a reported position) set by the stack left.
 */
function parseTokens(text: string, lineCounter: LineCounter): CST.Token[] | { tooDeepAt: number } {
  const parser = new Parser(lineCounter.addNewLine);
  lineCounter.addNewLine(0); // what Parser.parse() does first
  const tokens: CST.Token[] = [];
  for (const lexeme of new Lexer().lex(text)) {
    tokens.push(...parser.next(lexeme));
    if (parser.stack.length <= MAX_NESTING) continue; // cheap: open collections are fewer
    const open = parser.stack.filter((t) => COLLECTIONS.has(t.type));
    if (open.length > MAX_NESTING) return { tooDeepAt: open[MAX_NESTING]!.offset };
  }
  tokens.push(...parser.end());
  return tokens;
}

export type DocumentData = { data: unknown } | { error: { message: string; hint: string }; offset: number };

/**
 * The document as plain data. Aliases are expanded here, so a few lines of nested aliases could
 * grow into billions of values: past the limit the YAML library stops, and that is the document's
 * error, at its first alias.
 */
export function documentData(doc: Document.Parsed): DocumentData {
  try {
    return { data: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
  } catch (e) {
    let offset = doc.contents?.range[0] ?? doc.range[0];
    visit(doc, {
      Alias(_, node) {
        offset = node.range?.[0] ?? offset;
        return visit.BREAK;
      },
    });
    const bomb = /excessive alias count/i.test(errorText(e));
    const error = bomb
      ? {
          message: `YAML aliases expand to too much data (more than ${MAX_ALIAS_COUNT} aliased values, as in an alias bomb)`,
          hint: 'write the values out, or use fewer anchors (&name) and aliases (*name): nested aliases multiply',
        }
      : {
          message: `YAML document cannot be read: ${libraryMessage(errorText(e))}`,
          hint: 'check its anchors (&name) and aliases (*name)',
        };
    return { error, offset };
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
