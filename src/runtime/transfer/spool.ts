/**
 * A download kept on the manager's disk, never in memory: zip readers need random access (the
 * central directory is at the end), so a zip from GitLab or object storage is written to a
 * private temporary file first and read from there.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface SpooledFile {
  path: string;
  size: number;
  /** Deletes the file and its directory; idempotent, never throws. */
  remove(): Promise<void>;
}

/** Writes `body` to a new temporary file (mode 0600 in a 0700 directory). */
export async function spoolToFile(
  body: Readable | AsyncIterable<Uint8Array>,
  opts: { dir?: string; name?: string; signal?: AbortSignal } = {},
): Promise<SpooledFile> {
  const dir = await mkdtemp(join(opts.dir ?? tmpdir(), 'runfleet-transfer-'));
  const path = join(dir, opts.name ?? 'download');
  const remove = () => rm(dir, { recursive: true, force: true }).catch(() => undefined);
  try {
    const source = body instanceof Readable ? body : Readable.from(body);
    await pipeline(source, createWriteStream(path, { mode: 0o600 }), { signal: opts.signal });
    return { path, size: (await stat(path)).size, remove };
  } catch (e) {
    await remove();
    throw e;
  }
}
