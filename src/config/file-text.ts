/**
 * The checks a fleet file passes before YAML sees it: a regular file, at most 1 MiB, text, UTF-8.
 * Each failure is the one issue of its file, at the first offending position, and never quotes the
 * content: junk echoed back would bury the message (and may be something that should not be shown).
 */
import { isUtf8 } from 'node:buffer';
import { fileIssue, type ConfigIssue } from './issues.js';

/** Fleet files are a few KiB; a larger one is a mistake, and parsing it would block a daemon. */
export const MAX_FLEET_FILE_BYTES = 1024 * 1024;

const NOT_TEXT_HINT = 'fleet files are UTF-8 YAML text; move other files out of the fleets directory';

// YAML allows tab, newline and carriage return among the C0 controls, and not DEL.
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;

/** An issue for a file that is not a regular file (a device, a fifo): it is never opened. */
export function notRegularFile(file: string): ConfigIssue {
  return fileIssue(file, 'not a regular file', NOT_TEXT_HINT);
}

export function oversize(file: string, bytes: number): ConfigIssue | undefined {
  if (bytes <= MAX_FLEET_FILE_BYTES) return undefined;
  return fileIssue(
    file,
    `fleet file is ${(bytes / MAX_FLEET_FILE_BYTES).toFixed(1)} MiB; a fleet file may be at most 1 MiB`,
    'a fleet file holds a few fleets and is a few KiB; check that this is the file you meant, or split it',
  );
}

/** Size and control characters of a text; undefined when YAML may have it. */
export function textIssue(file: string, text: string): ConfigIssue | undefined {
  const tooBig = oversize(file, Buffer.byteLength(text, 'utf8'));
  if (tooBig) return tooBig;
  const control = CONTROL.exec(text);
  if (!control) return undefined;
  return fileIssue(
    file,
    'not a text file: it holds control characters (the first one is here)',
    NOT_TEXT_HINT,
    positionOf(text, control.index),
  );
}

/** The text of a file's bytes, or its one issue. Binary junk is told apart from a wrong encoding. */
export function decodeFleetFile(file: string, bytes: Buffer): { text: string } | { issue: ConfigIssue } {
  const tooBig = oversize(file, bytes.length);
  if (tooBig) return { issue: tooBig };
  const text = bytes.toString('utf8'); // invalid sequences become U+FFFD
  const notText = textIssue(file, text);
  if (notText) return { issue: notText };
  if (isUtf8(bytes)) return { text };
  return {
    issue: fileIssue(
      file,
      'not valid UTF-8 (the first invalid byte is here)',
      'save the file as UTF-8; fleet files are UTF-8 YAML text',
      positionOf(text, firstInvalidUtf8(text, bytes)),
    ),
  };
}

/** Where in `text` (decoded from `bytes`) the first U+FFFD stands for invalid bytes, not a real one. */
function firstInvalidUtf8(text: string, bytes: Buffer): number {
  let byteOffset = 0;
  let from = 0;
  for (;;) {
    const i = text.indexOf('\ufffd', from);
    if (i < 0) return 0; // not reached: isUtf8 said some sequence is invalid
    byteOffset += Buffer.byteLength(text.slice(from, i), 'utf8');
    // A U+FFFD written in the file is the bytes EF BF BD; a replacement for junk is not.
    if (bytes[byteOffset] !== 0xef || bytes[byteOffset + 1] !== 0xbf || bytes[byteOffset + 2] !== 0xbd)
      return i;
    byteOffset += 3;
    from = i + 1;
  }
}

/** 1-based line and column of a string offset, as YAML positions are counted. */
function positionOf(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, col: offset - lineStart + 1 };
}
