/**
 * Streams selected files off an instance as an archive GitLab accepts (docs/gitlab-job-api.md §6a):
 * the instance runs `tar -c` (POSIX sh, xargs and any tar: GNU or busybox), the tar stream comes
 * over the job's connector (one SSH channel) and is turned, entry by entry, into a zip (yazl), a
 * multi-member gzip (one member per file, as gitlab-runner writes reports) or the one file as it
 * is (`raw`). Nothing is held whole: backpressure runs from the consumer of `stream` back to the
 * SSH window, so the manager buffers a few chunks per transfer whatever the archive's size.
 *
 * The archive is only finished (zip central directory, last gzip member) once `tar` exited 0: a
 * failure on the instance destroys `stream` with an error instead, so a consumer uploading it
 * aborts its request and the server never stores a truncated archive that looks complete.
 */
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { constants as zconst, createDeflateRaw, crc32 } from 'node:zlib';
import { posix } from 'node:path';
import tar from 'tar-stream';
import yazl from 'yazl';
import type { Connector, SpawnedCommand } from '../connectors/connector.js';
import { shellQuote } from '../script/shell-quote.js';
import { TransferError } from './errors.js';

export type ArchiveFormat = 'zip' | 'gzip' | 'raw';

export interface ArchiveOptions {
  /** Absolute POSIX path the `paths` are relative to, on the instance. */
  root: string;
  /** Project-relative paths, directories included (they are not descended into). A `Selection`'s `paths`. */
  paths: readonly string[];
  format: ArchiveFormat;
  /** zlib level 0–9 for zip and gzip (0 stores). @default 1 (see `compressionLevel`) */
  level?: number;
  signal?: AbortSignal;
}

export interface ArchiveSummary {
  /** Entries written (files, directories, symlinks). */
  entries: number;
  /** Bytes of file content read from the instance. */
  bytes: number;
  /** Entries that cannot go into this format (devices, fifos; directories in gzip). */
  skipped: string[];
}

export interface ArchiveStream {
  /** The archive's bytes. Errors (TransferError) if the instance fails or `signal` aborts. */
  stream: Readable;
  /** Resolves once the whole archive was produced; rejects as `stream` errors. */
  done: Promise<ArchiveSummary>;
}

/**
 * gitlab-runner's `ARTIFACT_COMPRESSION_LEVEL` / `CACHE_COMPRESSION_LEVEL` names as zlib levels.
 * runfleet's default is `fastest` (1), not Go's 6: on the manager every job's deflate shares a few
 * cores, and artifacts are mostly build output that compresses little (bench/artifacts).
 */
export function compressionLevel(name: string | undefined): number {
  switch ((name ?? '').trim().toLowerCase()) {
    case 'fast':
      return 3;
    case 'default':
      return 6;
    case 'slow':
      return 8;
    case 'slowest':
      return 9;
    default:
      return 1;
  }
}

/** The instance side: NUL-separated `./path` names on stdin, one tar stream (or several, concatenated) out. */
export function tarCreateCommand(root: string): string {
  return `cd ${shellQuote(root)} || exit 3\nexec xargs -0 tar -c -f - --no-recursion`;
}

/** Starts streaming `opts.paths` off the instance in `opts.format`. */
export function archiveStream(connector: Connector, opts: ArchiveOptions): ArchiveStream {
  const level = Math.max(0, Math.min(9, opts.level ?? 1));
  const out = new Output(opts.format, level);
  const summary: ArchiveSummary = { entries: 0, bytes: 0, skipped: [] };
  const done = run(connector, opts, out, summary).then(
    () => summary,
    (e: unknown) => {
      const err =
        e instanceof TransferError ? e : new TransferError(`archiving failed: ${(e as Error).message}`);
      out.fail(err);
      throw err;
    },
  );
  done.catch(() => undefined);
  // The error also rejects `done`: a stream nobody reads yet must not crash the process with it.
  out.stream.on('error', () => undefined);
  return { stream: out.stream, done };
}

async function run(connector: Connector, opts: ArchiveOptions, out: Output, summary: ArchiveSummary) {
  if (opts.format === 'raw' && opts.paths.length !== 1) {
    throw new TransferError(
      opts.paths.length === 0
        ? 'a raw artifact needs one file, none matched'
        : 'only one file can be sent as raw',
    );
  }
  if (opts.paths.length === 0) {
    await out.finish();
    return;
  }
  const extract = tar.extract();
  const hardLinks: { name: string; mode: number; mtime: Date }[] = [];
  const parsed = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, body, next) => {
      const name = memberName(header.name);
      const onEnd = (): void => next();
      const mode = header.mode ?? 0o644;
      const mtime = header.mtime ?? new Date();
      switch (header.type) {
        case 'file':
        case 'contiguous-file':
          summary.entries++;
          summary.bytes += header.size ?? 0;
          out
            .addFile(name, body as unknown as Readable, { mode, mtime, size: header.size ?? 0 })
            .then(onEnd, reject);
          return;
        case 'directory':
          if (out.addDirectory(name, { mode, mtime })) summary.entries++;
          else summary.skipped.push(name);
          break;
        case 'symlink':
          if (out.addSymlink(name, header.linkname ?? '', { mode, mtime })) summary.entries++;
          else summary.skipped.push(name);
          break;
        case 'link':
          // tar stores the second name of a hard-linked file without its data: read it again below.
          hardLinks.push({ name, mode, mtime });
          break;
        default:
          summary.skipped.push(name);
      }
      body.on('end', onEnd);
      body.resume();
    });
    extract.on('finish', () => resolve());
    extract.on('error', (e: Error) =>
      reject(new TransferError(`the tar stream from the instance is broken: ${e.message}`)),
    );
  });

  const stderr: Buffer[] = [];
  const proc = await connector.spawn(tarCreateCommand(opts.root), {
    stdoutStream: extract as unknown as Writable,
    onStderr: (c) => {
      if (stderr.length < 16) stderr.push(c);
    },
    signal: opts.signal,
  });
  await writeAll(
    proc,
    opts.paths.map((p) => `./${p}\0`),
  );
  const res = await proc.done;
  (extract as unknown as Writable).end();
  if (res.aborted || opts.signal?.aborted) throw new TransferError('archiving was stopped');
  if (res.exitCode !== 0) {
    const why = Buffer.concat(stderr).toString('utf8').trim().split('\n').slice(-3).join('; ');
    throw new TransferError(
      res.exitCode === 3
        ? `cannot enter ${opts.root} on the instance`
        : `tar on the instance failed (exit code ${res.exitCode})${why ? `: ${why}` : ''}`,
    );
  }
  await parsed;
  for (const link of hardLinks) {
    summary.entries++;
    summary.bytes += await out.addFromInstance(connector, opts.root, link, opts.signal);
  }
  await out.finish();
}

/** Writes the names to the command's stdin with backpressure, then closes it. */
async function writeAll(proc: SpawnedCommand, names: string[]): Promise<void> {
  const stdin = proc.stdin;
  for (const n of names) {
    if (!stdin.write(n)) await new Promise<void>((r) => stdin.once('drain', () => r()));
  }
  stdin.end();
}

/** `./a/b/` → `a/b`. */
function memberName(name: string): string {
  let n = name.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  if (n.startsWith('/')) n = n.replace(/^\/+/, '');
  return n;
}

interface EntryMeta {
  mode: number;
  mtime: Date;
}

/** The format side: one writer per format behind the same four calls. */
class Output {
  readonly stream: Readable;
  private readonly zip: yazl.ZipFile | undefined;
  private readonly plain: PassThrough | undefined;
  private failed = false;

  constructor(
    private readonly format: ArchiveFormat,
    private readonly level: number,
  ) {
    if (format === 'zip') {
      this.zip = new yazl.ZipFile();
      this.stream = this.zip.outputStream as Readable;
    } else {
      this.plain = new PassThrough({ highWaterMark: 256 * 1024 });
      this.stream = this.plain;
    }
  }

  /** Resolves once the entry's content has been read (the tar stream may move on). */
  addFile(name: string, body: Readable, meta: EntryMeta & { size?: number }): Promise<void> {
    const ended = new Promise<void>((resolve, reject) => {
      body.once('end', resolve);
      body.once('error', reject);
    });
    if (this.zip) {
      const zip = this.zip;
      const through = new PassThrough({ highWaterMark: SAMPLE_BYTES });
      body.pipe(through);
      const add = (compress: boolean) =>
        zip.addReadStream(through, name, {
          mtime: meta.mtime,
          mode: meta.mode | 0o100000,
          ...(meta.size !== undefined ? { size: meta.size } : {}),
          compress,
          ...(compress ? { compressionLevel: this.level } : {}),
        });
      if (this.level === 0 || (meta.size !== undefined && meta.size < SAMPLE_BYTES)) add(this.level > 0);
      else void firstChunk(through).then((sample) => add(!sample || compressible(sample)));
      return ended;
    }
    if (this.format === 'raw') {
      body.pipe(this.plain!, { end: false });
      return ended;
    }
    return this.gzipMember(name, body, meta.mtime);
  }

  addDirectory(name: string, meta: EntryMeta): boolean {
    if (!this.zip || name === '') return false;
    this.zip.addEmptyDirectory(name, { mtime: meta.mtime, mode: meta.mode | 0o040000 });
    return true;
  }

  addSymlink(name: string, target: string, meta: EntryMeta): boolean {
    if (!this.zip) return false;
    this.zip.addBuffer(Buffer.from(target), name, {
      mtime: meta.mtime,
      mode: 0o120000 | (meta.mode & 0o7777),
      compress: false,
    });
    return true;
  }

  /** A file read again from the instance by itself (`cat`): the second name of a hard link. */
  async addFromInstance(
    connector: Connector,
    root: string,
    entry: { name: string } & EntryMeta,
    signal?: AbortSignal,
  ) {
    const body = new PassThrough();
    let bytes = 0;
    body.on('data', (c: Buffer) => (bytes += c.length));
    const added = this.addFile(entry.name, body, { mode: entry.mode, mtime: entry.mtime });
    const res = await connector.exec(`cd ${shellQuote(root)} && cat ./${shellQuote(entry.name)}`, {
      stdoutStream: body,
      signal,
    });
    body.end();
    if (res.exitCode !== 0) throw new TransferError(`cannot read ${entry.name} on the instance`);
    await added;
    return bytes;
  }

  async finish(): Promise<void> {
    if (this.zip) {
      this.zip.end();
      return;
    }
    this.plain!.end();
  }

  fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.stream.destroy(err);
  }

  /** One gzip member (RFC 1952): name = base name, comment = the project-relative path. */
  private async gzipMember(path: string, body: Readable, mtime: Date): Promise<void> {
    const out = this.plain!;
    const latin1 = (s: string) => Buffer.from(s.replace(/[^\x20-\xff]/g, '_'), 'latin1');
    const head = Buffer.concat([
      Buffer.from([0x1f, 0x8b, 8, 0x08 | 0x10]),
      u32(Math.floor(mtime.getTime() / 1000)),
      Buffer.from([this.level >= 9 ? 2 : this.level <= 1 ? 4 : 0, 3]),
      latin1(posix.basename(path)),
      Buffer.from([0]),
      latin1(path),
      Buffer.from([0]),
    ]);
    await write(out, head);
    const deflate = createDeflateRaw({ level: this.level, flush: zconst.Z_NO_FLUSH });
    let crc = 0;
    let size = 0;
    body.on('data', (c: Buffer) => {
      crc = crc32(c, crc);
      size += c.length;
    });
    const piped = new Promise<void>((resolve, reject) => {
      deflate.on('end', resolve);
      deflate.on('error', reject);
      body.on('error', reject);
    });
    body.pipe(deflate);
    deflate.pipe(out, { end: false });
    await piped;
    await write(out, Buffer.concat([u32(crc >>> 0), u32(size >>> 0)]));
  }
}

/** How much of a file decides whether deflating it is worth it. */
const SAMPLE_BYTES = 64 * 1024;

/**
 * Whether deflate gains anything on data like `sample`: already compressed or random content
 * (images, tarballs, binaries with compressed sections) is stored instead, which costs the
 * manager no CPU for nothing; the zip stays a valid zip either way.
 *
 * Judged by the sample's byte entropy, not by deflating it: a zlib stream per file (state of
 * ~400 KiB allocated and freed each time) fragmented the manager's heap, and bench/artifacts'
 * 1 GiB / 1,000-file upload grew RSS by ~30 MB more than the same upload without it. Content
 * near 8 bits per byte is what deflate cannot shrink by a few percent.
 */
export function compressible(sample: Buffer): boolean {
  const counts = HISTOGRAM.fill(0);
  for (let i = 0; i < sample.length; i++) counts[sample[i]!]!++;
  let bits = 0;
  for (let b = 0; b < 256; b++) {
    const c = counts[b]!;
    if (c > 0) bits -= c * Math.log2(c / sample.length);
  }
  return bits / sample.length < MAX_DEFLATABLE_ENTROPY;
}

/** Bits per byte above which stored beats deflate (random data: 7.99; text: 4–5; executables: 5–6.5). */
const MAX_DEFLATABLE_ENTROPY = 7.5;
const HISTOGRAM = new Uint32Array(256);

/** The first chunk `stream` buffers, put back so the reader still gets every byte. */
function firstChunk(stream: PassThrough): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const take = (): void => {
      const chunk = stream.read() as Buffer | null;
      if (chunk === null) return void stream.once('readable', take);
      stream.unshift(chunk);
      resolve(chunk);
    };
    stream.once('end', () => resolve(undefined));
    take();
  });
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function write(out: PassThrough, chunk: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (out.write(chunk)) resolve();
    else out.once('drain', resolve);
  });
}
