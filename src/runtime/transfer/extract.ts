/**
 * Unpacks a zip (an artifacts archive from GitLab, a cache) into a directory on an instance
 * (docs/gitlab-job-api.md §6a): the zip, spooled on the manager's disk (spool.ts), is read entry
 * by entry (yauzl) and re-packed as a tar stream (tar-stream) into `tar -x` on the instance, over
 * the job's connector. The instance needs only sh, mkdir and tar; the manager holds one chunk at
 * a time.
 *
 * Entries that would land outside the directory (absolute names, `..`, or a path below a symlink
 * the same archive made) are skipped and reported, never written.
 */
import { close, open, read } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';
import tar from 'tar-stream';
import yauzl from 'yauzl';
import type { Connector, ExecResult } from '../connectors/connector.js';
import { shellQuote } from '../script/shell-quote.js';
import { TransferError } from './errors.js';

export interface ExtractOptions {
  /** Absolute POSIX directory on the instance; created if missing. */
  root: string;
  /** The zip, on the manager's disk. */
  zipFile: string;
  signal?: AbortSignal;
}

export interface ExtractSummary {
  entries: number;
  bytes: number;
  /** Entries not written, with why (`../x: outside the directory`). */
  skipped: string[];
}

export const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

/** The instance side: a tar stream on stdin, unpacked without taking the archive's owners. */
export function tarExtractCommand(root: string): string {
  const q = shellQuote(root);
  return `mkdir -p ${q} && cd ${q} || exit 3\nexec tar -x -o -f -`;
}

export async function extractZip(connector: Connector, opts: ExtractOptions): Promise<ExtractSummary> {
  const zip = await openZip(opts.zipFile);
  const summary: ExtractSummary = { entries: 0, bytes: 0, skipped: [] };
  const session = await openTarSession(connector, opts.root, opts.signal).catch((e: unknown) => {
    zip.close();
    throw e;
  });
  try {
    await packEntries(zip, () => Promise.resolve(session.pack), summary);
  } catch (e) {
    zip.close();
    throw await session.abort(e);
  }
  await session.finish();
  return summary;
}

/** `tar -x` running on the instance, fed entry by entry through `pack`. */
export interface TarSession {
  pack: tar.Pack;
  /** Ends the tar stream and waits for `tar` to exit 0; a TransferError saying why otherwise. */
  finish(): Promise<void>;
  /** Stops `tar` after `e`; returns the error to throw (a TransferError). */
  abort(e: unknown): Promise<Error>;
}

/** Starts `tar -x` in `root` (created if missing) on the instance. */
export async function openTarSession(
  connector: Connector,
  root: string,
  signal: AbortSignal | undefined,
): Promise<TarSession> {
  const pack = tar.pack();
  const stderr: Buffer[] = [];
  const proc = await connector.spawn(tarExtractCommand(root), {
    onStderr: (c) => {
      if (stderr.length < 16) stderr.push(c);
    },
    signal,
  });
  const stdin = proc.stdin;
  const piped = new Promise<void>((resolve, reject) => {
    (pack as unknown as Readable).on('error', reject);
    // tar gone (it failed, or the connection broke): the entry being written fails at once
    // instead of waiting on a pipe nobody reads.
    stdin.on('error', (e) => {
      reject(e);
      pack.destroy(e);
    });
    stdin.on('finish', resolve);
    (pack as unknown as Readable).pipe(stdin);
  });
  piped.catch(() => undefined);
  const failure = (res: ExecResult): TransferError | undefined => {
    if (signal?.aborted) return new TransferError('extracting was stopped');
    if (res.exitCode === 0 || res.exitCode === null) {
      return res.aborted ? new TransferError('extracting was stopped') : undefined;
    }
    const why = Buffer.concat(stderr).toString('utf8').trim().split('\n').slice(-3).join('; ');
    return new TransferError(
      res.exitCode === 3
        ? `cannot create ${root} on the instance${why ? `: ${why}` : ''}`
        : `tar -x on the instance failed (exit code ${res.exitCode})${why ? `: ${why}` : ''}`,
    );
  };
  // tar ended before its input did (it could not start, or failed): over SSH nothing else tells
  // the writer, whose channel window just stops opening, so the entry being written fails now.
  let finishing = false;
  void proc.done.then(
    (res) => {
      if (!finishing)
        pack.destroy(failure(res) ?? new TransferError('tar -x on the instance ended before its input'));
    },
    (e: unknown) => pack.destroy(e as Error),
  );
  const abort = async (e: unknown): Promise<Error> => {
    proc.kill();
    const res = await proc.done.catch(() => undefined);
    // tar's own reason when it ended by itself (a broken pipe on our side says less)
    const own = res && failure(res);
    if (own && !(e instanceof TransferError)) return own;
    return e instanceof TransferError ? e : new TransferError(`extracting failed: ${(e as Error).message}`);
  };
  return {
    pack,
    abort,
    async finish() {
      try {
        finishing = true;
        pack.finalize();
        await piped;
      } catch (e) {
        throw await abort(e);
      }
      const res = await proc.done;
      const failed =
        failure(res) ??
        (res.exitCode === 0
          ? undefined
          : new TransferError(`tar -x on the instance was ended by ${res.signal ?? 'a signal'}`));
      if (failed) throw failed;
    },
  };
}

/**
 * How much of the spooled zip one read takes. yauzl's own file reader reads 16 KiB at a time
 * (Node's default highWaterMark): 65,536 thread-pool reads per GiB, and as many 16 KiB SSH
 * packets instead of full 32 KiB ones. 1 MiB reads keep the chunk count small all the way to the
 * SSH channel (which cuts them into full packets) at a cost of a few MiB held per transfer.
 */
const READ_CHUNK = 1024 * 1024;

/** The spooled zip as yauzl's random-access source, read in READ_CHUNK pieces. */
class SpooledZipReader extends yauzl.RandomAccessReader {
  constructor(private readonly fd: number) {
    super();
  }

  override _readStreamForRange(start: number, end: number): Readable {
    // A stream of its own rather than fs.createReadStream: given an fd, that one closes it at the
    // end of the range even with autoClose: false once yauzl destroys it, and the next entry fails.
    const fd = this.fd;
    let pos = start;
    return new Readable({
      highWaterMark: READ_CHUNK,
      read(this: Readable) {
        const n = Math.min(READ_CHUNK, end - pos);
        if (n <= 0) return void this.push(null);
        const buffer = Buffer.allocUnsafe(n);
        read(fd, buffer, 0, n, pos, (err, got) => {
          if (err) return void this.destroy(err);
          if (got === 0) return void this.destroy(new Error('unexpected end of file'));
          pos += got;
          this.push(got === n ? buffer : buffer.subarray(0, got));
        });
      },
    });
  }

  /** The small reads (central directory, local headers): one pread, not a stream. */
  override read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (err: Error | null) => void,
  ): void {
    read(this.fd, buffer, offset, length, position, (err, n) =>
      callback(err ?? (n < length ? new Error('unexpected end of file') : null)),
    );
  }

  override close(callback: (err: Error | null) => void): void {
    close(this.fd, callback);
  }
}

export async function openZip(path: string): Promise<yauzl.ZipFile> {
  const { size } = await stat(path);
  const fd = await new Promise<number>((resolve, reject) =>
    open(path, 'r', (err, fd) => (err ? reject(err) : resolve(fd))),
  );
  const reader = new SpooledZipReader(fd);
  return new Promise((resolve, reject) => {
    yauzl.fromRandomAccessReader(
      reader,
      size,
      { lazyEntries: true, autoClose: false, decodeStrings: true, strictFileNames: false },
      (err, zip) => {
        if (err || !zip) {
          close(fd, () => undefined);
          return reject(new TransferError(`not a valid zip archive: ${err?.message ?? 'unreadable'}`));
        }
        resolve(zip);
      },
    );
  });
}

/** Why `name` must not be written; undefined when it is safe. */
export function unsafeEntryName(name: string, symlinks: ReadonlySet<string>): string | undefined {
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'an absolute path';
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..') || parts.length === 0) return 'outside the directory';
  for (let i = 1; i < parts.length; i++) {
    if (symlinks.has(parts.slice(0, i).join('/'))) return 'below a symlink of the same archive';
  }
  return undefined;
}

/**
 * An entry some earlier pass already wrote (stream-extract.ts), told by the offset of its local
 * header: `check` gets what the central directory says of it and the entry is not written again.
 */
export interface WrittenBefore {
  has(localHeaderOffset: number): boolean;
  check(localHeaderOffset: number, name: string, unixMode: number): void;
}

/**
 * Adds every entry of `zip` (but those `before` wrote) to the pack `packFor` gives, in the
 * archive's order; `packFor` is first called for the first entry to write.
 */
export async function packEntries(
  zip: yauzl.ZipFile,
  packFor: () => Promise<tar.Pack>,
  summary: ExtractSummary,
  before?: WrittenBefore,
): Promise<void> {
  const symlinks = new Set<string>();
  await new Promise<void>((resolve, reject) => {
    zip.on('error', reject);
    zip.on('end', resolve);
    zip.on('entry', (entry: yauzl.Entry) => {
      handle(entry).then(
        () => zip.readEntry(),
        (e: unknown) => reject(e),
      );
    });
    const handle = async (entry: yauzl.Entry): Promise<void> => {
      const raw = entry.fileName.replace(/\\/g, '/');
      const name = raw
        .split('/')
        .filter((p) => p !== '' && p !== '.')
        .join('/');
      const why = unsafeEntryName(raw, symlinks);
      if (why) {
        summary.skipped.push(`${raw}: ${why}`);
        return;
      }
      const unixMode = (entry.externalFileAttributes >>> 16) & 0xffff;
      if (before?.has(entry.relativeOffsetOfLocalHeader)) {
        before.check(entry.relativeOffsetOfLocalHeader, name, unixMode);
        return;
      }
      const isDir = raw.endsWith('/') || (unixMode & S_IFMT) === S_IFDIR;
      const isLink = (unixMode & S_IFMT) === S_IFLNK;
      const mtime = entry.getLastModDate();
      const pack = await packFor();
      summary.entries++;
      if (isDir) {
        await addEntry(pack, { name, type: 'directory', mode: perm(unixMode, 0o755), mtime });
        return;
      }
      const body = await openEntry(zip, entry);
      if (isLink) {
        const target = await readSmall(body, 4096);
        symlinks.add(name);
        await addEntry(pack, { name, type: 'symlink', linkname: target, mode: perm(unixMode, 0o777), mtime });
        return;
      }
      summary.bytes += entry.uncompressedSize;
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry(
          { name, type: 'file', size: entry.uncompressedSize, mode: perm(unixMode, 0o644), mtime },
          (err) => (err ? reject(err) : resolve()),
        ) as unknown as Writable;
        body.on('error', reject);
        // a pipe re-throws an error of a destination that has no listener: a process crash
        sink.on('error', reject);
        body.pipe(sink);
      });
    };
    zip.readEntry();
  });
  zip.close();
}

/** The permission bits of a zip entry's Unix mode; `fallback` when the writer left them out. */
export function perm(unixMode: number, fallback: number): number {
  const p = unixMode & 0o7777;
  return p === 0 ? fallback : p;
}

function addEntry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry(header, (err) => (err ? reject(err) : resolve()));
  });
}

function openEntry(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<Readable> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(entry, (err, stream) =>
      err || !stream
        ? reject(new TransferError(`cannot read ${entry.fileName}: ${err?.message}`))
        : resolve(stream),
    );
  });
}

async function readSmall(body: Readable, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    size += (c as Buffer).length;
    if (size > max) throw new TransferError('a symlink target longer than 4096 bytes');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
