/**
 * Whether a file is deflated or stored in a zip: what deflate shrinks (text, executables, runs of
 * one byte) is compressed, what it cannot (random or already gzipped data) is stored.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { compressible } from '../../../src/runtime/transfer/archive.js';

const sample = (b: Buffer) => b.subarray(0, 64 * 1024);
const text = readFileSync(new URL('../../../README.md', import.meta.url));

t.test('deflated: what deflate shrinks', async (t) => {
  t.equal(compressible(sample(text)), true, 'text');
  t.equal(compressible(sample(readFileSync(process.execPath).subarray(1 << 20))), true, 'an executable');
  t.equal(compressible(Buffer.alloc(64 * 1024)), true, 'zeros');
});

t.test('stored: what deflate cannot shrink', async (t) => {
  t.equal(compressible(randomBytes(64 * 1024)), false, 'random data');
  t.equal(compressible(sample(gzipSync(Buffer.concat([text, randomBytes(64 * 1024)])))), false, 'gzip');
});
