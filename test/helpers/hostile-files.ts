/**
 * Fleet files that attack the parser rather than misconfigure a fleet: each must come back as one
 * short error for its own file. Built at test time (the huge one is 5 MiB) and deterministic, so
 * every test can assert exact positions.
 */
import { createHash } from 'node:crypto';

/** A billion-laughs document: 9 levels of 9 aliases each would expand to 9^9 strings. */
export const ALIAS_BOMB = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
  .concat([...'bcdefghi'].map((n, i) => `${n}: &${n} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(',')}]`))
  .join('\n')
  .concat('\n');

const LEVELS = 1000;

/** `bytes` bytes from SHA-256 in counter mode: random-looking junk, the same on every run. */
export function junk(bytes: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; out.length * 32 < bytes; i++) out.push(createHash('sha256').update(`junk ${i}`).digest());
  return Buffer.concat(out).subarray(0, bytes);
}

export const VALID_FLEET = 'name: fine\nprovider: {type: local}\nmax_instances: 1\n';

/** File name → content. */
export function hostileFiles(): Record<string, string | Buffer> {
  return {
    'alias-bomb.yaml': ALIAS_BOMB,
    'nested-seq.yaml': `name: ${'['.repeat(LEVELS)}${']'.repeat(LEVELS)}\n`,
    'nested-map.yaml': `name: ${'{a: '.repeat(LEVELS)}1${'}'.repeat(LEVELS)}\n`,
    'nested-block.yaml': Array.from({ length: LEVELS }, (_, i) => `${' '.repeat(i)}a:`).join('\n') + ' 1\n',
    'random-bytes.yaml': junk(64 * 1024),
    'nul-bytes.yaml': Buffer.from(`name: a\0b\nprovider: {type: local}\nmax_instances: 1\n`),
    'latin-1.yaml': Buffer.concat([
      Buffer.from('# caf'),
      Buffer.from([0xe9]),
      Buffer.from(` menu\n${VALID_FLEET}`),
    ]),
    // Valid YAML, but 5 MiB of it: refused by size before anything reads it.
    'huge.yaml': `${'# padding\n'.repeat(512 * 1024)}${VALID_FLEET}`,
  };
}

/** The one formatted error each file must give; `@` stands for the file's path. */
export const HOSTILE_ERRORS: Record<string, string> = {
  'alias-bomb.yaml':
    '@:2:8: YAML aliases expand to too much data (more than 100 aliased values, as in an alias bomb)\n' +
    '  hint: write the values out, or use fewer anchors (&name) and aliases (*name): nested aliases multiply',
  'nested-seq.yaml': `@:1:70: ${nestingMessage()}`,
  'nested-map.yaml': `@:1:259: ${nestingMessage()}`,
  'nested-block.yaml': `@:65:65: ${nestingMessage()}`,
  'random-bytes.yaml': `@:1:1: ${binaryMessage()}`,
  'nul-bytes.yaml': `@:1:8: ${binaryMessage()}`,
  'latin-1.yaml':
    '@:1:6: not valid UTF-8 (the first invalid byte is here)\n' +
    '  hint: save the file as UTF-8; fleet files are UTF-8 YAML text',
  'huge.yaml':
    '@:1:1: fleet file is 5.0 MiB; a fleet file may be at most 1 MiB\n' +
    '  hint: a fleet file holds a few fleets and is a few KiB; check that this is the file you meant, or split it',
};

function nestingMessage(): string {
  return (
    'YAML nests more than 64 levels deep here\n' +
    '  hint: a fleet needs a few levels of nesting; look for an unclosed [ or {, or a generated file'
  );
}

function binaryMessage(): string {
  return (
    'not a text file: it holds control characters (the first one is here)\n' +
    '  hint: fleet files are UTF-8 YAML text; move other files out of the fleets directory'
  );
}
