/**
 * A zip download unpacked on the instance while it still arrives (docs/gitlab-job-api.md §6a).
 *
 * The body is read once, in order, by following the local headers. Each file entry of more than
 * SMALL bytes goes from the HTTP socket straight into `tar -x` on the instance, inflated on the
 * way; the SSH channel's backpressure reaches the socket, because the body is only read as fast
 * as the entries are written. When the archive stores the sizes after the data (a data descriptor,
 * as yazl, Go and Python write to a pipe), the tar header needs the size first, so the entry is
 * held in memory up to HOLD_MAX and, beyond that, on the manager's disk until its descriptor comes.
 *
 * Only the central directory, at the end, says what an entry is (file, directory, symlink) and
 * which mode it has. So every entry the local headers cannot place for sure waits for the end and
 * goes through yauzl in a second `tar -x` (extract.ts): small entries (every directory and symlink
 * is one), names not in UTF-8, methods other than store and deflate, encrypted entries, and, once
 * a data descriptor cannot be found, everything after it. Those bytes, the headers and the central
 * directory go to a private file at their offsets in the archive (SparseFile: what was streamed is
 * a hole), which yauzl reads as the whole zip. The streamed files were written with mode 0644;
 * those the central directory gives another mode are then set with one `chmod` per mode. The
 * instance needs nothing beyond sh, tar, xargs and chmod.
 */
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { createInflateRaw } from 'node:zlib';
import type tar from 'tar-stream';
import type { Connector } from '../connectors/connector.js';
import { shellQuote } from '../script/shell-quote.js';
import { TransferError } from './errors.js';
import {
  openTarSession,
  openZip,
  packEntries,
  perm,
  S_IFLNK,
  S_IFMT,
  unsafeEntryName,
  type ExtractSummary,
  type TarSession,
} from './extract.js';
import { BodyEnded, Incoming, SparseFile } from './incoming.js';
import type { SpooledFile } from './spool.js';

export interface StreamExtractOptions {
  /** Absolute POSIX directory on the instance; created if missing. */
  root: string;
  /** The zip as it arrives (an HTTP body). */
  body: Readable | AsyncIterable<Uint8Array>;
  signal?: AbortSignal;
  /** Where the kept file goes (default: the OS temporary directory) and its name. */
  spool?: { dir?: string; name?: string };
}

export interface StreamExtractResult extends ExtractSummary {
  /**
   * The download on disk with every streamed entry's data left as a hole: its central directory,
   * headers and sizes are whole (a cache reads its manifest from it). The caller removes it.
   */
  spooled: SpooledFile;
  /** Entries written while the download was still arriving. */
  streamed: number;
}

/** The body broke off before its end: a failed download (worth retrying), not a broken archive. */
export class DownloadCutShort extends TransferError {
  constructor(cause: unknown) {
    super(`download failed: ${(cause as Error).message ?? String(cause)}`, { retryable: true, cause });
  }
}

const LOCAL = 0x04034b50;
const CENTRAL = 0x02014b50;
const END = 0x06054b50;
const END64 = 0x06064b50;
const HEADERS = [LOCAL, CENTRAL, END, END64];
const DESCRIPTOR = Buffer.from([0x50, 0x4b, 0x07, 0x08]);
/** Reads and writes of the kept file. */
const CHUNK = 1024 * 1024;
/**
 * How much of an entry with a data descriptor is held in memory while its descriptor is awaited;
 * beyond it the entry goes to disk. Artifacts are mostly many files of a few MiB or less.
 */
const HOLD_MAX = 4 * 1024 * 1024;
/**
 * Entries up to this compressed size wait for the central directory. Every symlink is one (its
 * target is at most 4096 bytes); small files are cheap to leave for the end.
 */
const SMALL = 16 * 1024;
const ENCRYPTED = 0x1;
const HAS_DESCRIPTOR = 0x8;
const UTF8 = 0x800;

/** Unpacks `body` into `root` on the instance while it arrives. */
export async function extractZipStream(
  connector: Connector,
  opts: StreamExtractOptions,
): Promise<StreamExtractResult> {
  const dir = await mkdtemp(join(opts.spool?.dir ?? tmpdir(), 'runfleet-transfer-'));
  const path = join(dir, opts.spool?.name ?? 'download');
  const remove = () => rm(dir, { recursive: true, force: true }).catch(() => undefined);
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, 'w+', 0o600);
    const kept = new SparseFile(fh);
    const incoming = new Incoming(opts.body, opts.signal);
    const summary: ExtractSummary = { entries: 0, bytes: 0, skipped: [] };
    const streamed = new Map<number, { name: string; mode: number }>();

    const cutShort = (e: unknown) =>
      incoming.failure !== undefined ? new DownloadCutShort(incoming.failure) : e;
    // Opened at the first entry to stream: a small archive is all unpacked in the second pass.
    let first: TarSession | undefined;
    const firstPack = async () => (first ??= await openTarSession(connector, opts.root, opts.signal)).pack;
    try {
      await followLocalHeaders(incoming, kept, firstPack, summary, streamed);
      // The central directory, and whatever could not be streamed after the last streamed entry.
      await keepRest(incoming, kept);
    } catch (e) {
      const err = cutShort(e);
      await incoming.close();
      if (first) throw await first.abort(err);
      throw err instanceof TransferError
        ? err
        : new TransferError(`extracting failed: ${(err as Error).message}`);
    }
    await first?.finish();
    await fh.close();
    fh = undefined;

    // The central directory: what the streamed entries really are, and every other entry.
    const zip = await openZip(path);
    const chmods = new Map<number, string[]>();
    let second: TarSession | undefined;
    try {
      await packEntries(
        zip,
        async () => (second ??= await openTarSession(connector, opts.root, opts.signal)).pack,
        summary,
        {
          has: (offset) => streamed.has(offset),
          check(offset, name, unixMode) {
            const written = streamed.get(offset)!;
            if ((unixMode & S_IFMT) === S_IFLNK) {
              throw new TransferError(`${name}: a symlink target longer than 4096 bytes`);
            }
            const mode = perm(unixMode, 0o644);
            if (mode !== written.mode) chmods.set(mode, [...(chmods.get(mode) ?? []), name]);
          },
        },
      );
    } catch (e) {
      zip.close();
      if (second) throw await second.abort(e);
      throw e;
    }
    await second?.finish();
    await setModes(connector, opts.root, chmods, opts.signal);
    return { ...summary, streamed: streamed.size, spooled: { path, size: kept.size, remove } };
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await remove();
    throw e;
  }
}

interface LocalEntry {
  offset: number;
  name: string;
  flags: number;
  method: number;
  compressedSize: number;
  size: number;
  /** Where the data starts (its sizes may only be known after it, see HAS_DESCRIPTOR). */
  dataStart: number;
  mtime: Date;
  /** Why it waits for the central directory; undefined: it can be streamed. */
  defer: string | undefined;
}

/**
 * Walks the local headers from the start of the body, streaming every entry that can be and
 * recording it in `streamed` by its header's offset; every other byte goes to `kept` at its offset.
 * Returns at the central directory, or where the next entry cannot be placed (the central
 * directory pass takes over from there).
 */
async function followLocalHeaders(
  incoming: Incoming,
  kept: SparseFile,
  packFor: () => Promise<tar.Pack>,
  summary: ExtractSummary,
  streamed: Map<number, { name: string; mode: number }>,
): Promise<void> {
  for (;;) {
    const entry = await readLocalHeader(incoming, kept);
    if (!entry) return;
    let data: Data | undefined;
    if (entry.flags & HAS_DESCRIPTOR) {
      data = await untilDescriptor(incoming, kept, entry.defer ? 0 : HOLD_MAX);
      if (!data) return;
      entry.compressedSize = data.compressedSize;
      entry.size = data.size;
      // Only now is it known whether it is small (every symlink is) or stored with sizes that disagree.
      entry.defer ??= deferBySize(entry);
      if (entry.defer && data.held) await kept.write(entry.dataStart, data.held);
    } else if (entry.defer) {
      await keep(incoming, kept, entry.compressedSize);
      continue;
    }
    if (!entry.defer) {
      summary.entries++;
      summary.bytes += entry.size;
      streamed.set(entry.offset, { name: entry.name, mode: 0o644 });
      const source = !data
        ? incoming.stream(entry.compressedSize)
        : (data.held ?? kept.range(entry.dataStart, entry.dataStart + entry.compressedSize, CHUNK));
      await writeEntry(await packFor(), entry, source);
    }
    if (data) await kept.write(incoming.offset, incoming.take(data.descriptorLength));
  }
}

/** Why an entry of these sizes waits for the central directory, if it does. */
function deferBySize(e: LocalEntry): string | undefined {
  if (e.compressedSize <= SMALL) return 'small';
  if (e.method === 0 && e.compressedSize !== e.size) return 'sizes disagree';
  return undefined;
}

/** Reads the local header at the front of `incoming` into `kept`; undefined where none can be placed. */
async function readLocalHeader(incoming: Incoming, kept: SparseFile): Promise<LocalEntry | undefined> {
  if (!(await incoming.fill(30))) return undefined;
  const h = incoming.peek(0, 30);
  if (h.readUInt32LE(0) !== LOCAL) return undefined;
  const flags = h.readUInt16LE(6);
  const method = h.readUInt16LE(8);
  let compressedSize = h.readUInt32LE(18);
  let size = h.readUInt32LE(22);
  const nameLen = h.readUInt16LE(26);
  const extraLen = h.readUInt16LE(28);
  if (flags & ENCRYPTED || !(await incoming.fill(30 + nameLen + extraLen))) return undefined;
  const nameBytes = Buffer.from(incoming.peek(30, nameLen));
  const extra = readExtra(Buffer.from(incoming.peek(30 + nameLen, extraLen)));
  if (compressedSize === 0xffffffff || size === 0xffffffff) {
    const z = extra.get(0x0001);
    if (!z || z.length < 16) return undefined;
    size = Number(z.readBigUInt64LE(0));
    compressedSize = Number(z.readBigUInt64LE(8));
  }
  const offset = incoming.offset;
  const mtime = modTime(h.readUInt16LE(12), h.readUInt16LE(10), extra.get(0x5455));
  await kept.write(offset, incoming.take(30 + nameLen + extraLen));
  const ascii = !nameBytes.some((b) => b >= 0x80);
  const raw = nameBytes.toString(ascii || flags & UTF8 ? 'utf8' : 'latin1').replace(/\\/g, '/');
  // With a data descriptor the sizes are known only after the data: "small" is judged then.
  const small = !(flags & HAS_DESCRIPTOR) && compressedSize <= SMALL;
  const defer =
    method !== 0 && method !== 8
      ? 'method'
      : !ascii && !(flags & UTF8)
        ? 'a name not in UTF-8'
        : extra.has(0x7075)
          ? 'a Unicode path field'
          : raw.endsWith('/')
            ? 'a directory'
            : small
              ? 'small'
              : method === 0 && !(flags & HAS_DESCRIPTOR) && compressedSize !== size
                ? 'sizes disagree'
                : unsafeEntryName(raw, new Set())
                  ? 'unsafe'
                  : undefined;
  const name = raw
    .split('/')
    .filter((p) => p !== '' && p !== '.')
    .join('/');
  return { offset, name, flags, method, compressedSize, size, dataStart: incoming.offset, mtime, defer };
}
/** The extra field's blocks by header id. */
function readExtra(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let i = 0; i + 4 <= buf.length;) {
    const id = buf.readUInt16LE(i);
    const len = buf.readUInt16LE(i + 2);
    out.set(id, buf.subarray(i + 4, Math.min(buf.length, i + 4 + len)));
    i += 4 + len;
  }
  return out;
}

/** The extended timestamp's mtime when there is one, else the DOS time (local time, as yauzl). */
function modTime(date: number, time: number, ext: Buffer | undefined): Date {
  if (ext && ext.length >= 5 && ext[0]! & 1) return new Date(ext.readUInt32LE(1) * 1000);
  return new Date(
    ((date >> 9) & 0x7f) + 1980,
    ((date >> 5) & 0xf) - 1,
    date & 0x1f,
    (time >> 11) & 0x1f,
    (time >> 5) & 0x3f,
    (time & 0x1f) * 2,
  );
}

/** An entry's data once its data descriptor is found. */
interface Data {
  compressedSize: number;
  size: number;
  /** The descriptor's length; it is still at the front of `incoming`. */
  descriptorLength: number;
  /** The data, when it was held in memory; undefined: it is in `kept` at its offsets. */
  held: Buffer[] | undefined;
}

/**
 * Reads the data of an entry whose sizes follow it, up to its data descriptor: the first `PK\7\8`
 * whose compressed size is exactly the distance from the data's start and that a header signature
 * follows (32- or 64-bit sizes). A match by chance inside the data would need 8 more bytes to
 * agree. Up to `holdMax` bytes are held in memory; beyond that the data goes to `kept` as it comes.
 * Undefined when the body ended first (the descriptor had no signature, or the archive is short):
 * what was read is in `kept` or still queued, for the central directory pass.
 */
async function untilDescriptor(
  incoming: Incoming,
  kept: SparseFile,
  holdMax: number,
): Promise<Data | undefined> {
  let spilled = 0;
  // past the front of `incoming`: the first position not yet ruled out as the descriptor's start
  let from = 0;
  for (;;) {
    const i = incoming.indexOf(DESCRIPTOR, from);
    if (i >= 0) {
      await incoming.fill(i + 28);
      const d = incoming.peek(i, Math.min(28, incoming.queued - i));
      const distance = spilled + i;
      const isHeader = (k: number) => k + 4 <= d.length && HEADERS.includes(d.readUInt32LE(k));
      const found =
        d.length >= 20 && d.readUInt32LE(8) === distance && isHeader(16)
          ? { size: d.readUInt32LE(12), descriptorLength: 16 }
          : d.length >= 28 && Number(d.readBigUInt64LE(8)) === distance && isHeader(24)
            ? { size: Number(d.readBigUInt64LE(16)), descriptorLength: 24 }
            : undefined;
      if (found) {
        const at = incoming.offset;
        const data = incoming.take(i);
        if (spilled === 0) return { ...found, compressedSize: distance, held: data };
        await kept.write(at, data);
        return { ...found, compressedSize: distance, held: undefined };
      }
      from = i + 1;
      continue;
    }
    from = Math.max(from, incoming.queued - 3);
    if (incoming.queued > holdMax && from > 0) {
      await kept.write(incoming.offset, incoming.take(from));
      spilled += from;
      from = 0;
    }
    if (!(await incoming.pull())) return undefined;
  }
}

/** The next `n` bytes of the body into `kept`, as they come (fewer if the body ends first). */
async function keep(incoming: Incoming, kept: SparseFile, n: number): Promise<void> {
  for (let left = n; left > 0;) {
    if (incoming.queued === 0 && !(await incoming.pull())) return;
    const k = Math.min(left, incoming.queued);
    await kept.write(incoming.offset, incoming.take(k));
    left -= k;
  }
}

/** The rest of the body into `kept`, in writes of about CHUNK bytes. */
async function keepRest(incoming: Incoming, kept: SparseFile): Promise<void> {
  for (let more = true; more;) {
    while (incoming.queued < CHUNK && (more = await incoming.pull()));
    if (incoming.queued > 0) await kept.write(incoming.offset, incoming.take(incoming.queued));
  }
}

/** One file entry into the tar stream, its data read from `source` as it comes. */
function writeEntry(pack: tar.Pack, e: LocalEntry, source: AsyncIterable<Buffer> | Buffer[]): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const sink = pack.entry(
      { name: e.name, type: 'file', size: e.size, mode: 0o644, mtime: e.mtime },
      (err) => (err ? reject(err) : resolve()),
    ) as unknown as Writable;
    // a pipe re-throws an error of a destination that has no listener: a process crash
    sink.on('error', reject);
    const input = Readable.from(source, { objectMode: false });
    input.on('error', (err) =>
      reject(
        err instanceof BodyEnded
          ? new TransferError(`not a valid zip archive: it ends inside ${e.name}`)
          : err,
      ),
    );
    if (e.method === 8) {
      const inflate = createInflateRaw();
      inflate.on('error', (err) => reject(new TransferError(`${e.name}: ${err.message}`)));
      input.pipe(inflate).pipe(sink);
    } else {
      input.pipe(sink);
    }
  });
}

/** `chmod MODE` on the streamed files the central directory gave another mode, one call per mode. */
async function setModes(
  connector: Connector,
  root: string,
  modes: ReadonlyMap<number, string[]>,
  signal: AbortSignal | undefined,
): Promise<void> {
  for (const [mode, names] of modes) {
    let stderr = '';
    const res = await connector.exec(
      `cd ${shellQuote(root)} && xargs -0 chmod ${mode.toString(8).padStart(4, '0')} --`,
      {
        stdin: Buffer.from(names.map((n) => `${n}\0`).join('')),
        onStderr: (c) => void (stderr = (stderr + c.toString()).slice(-500)),
        ...(signal ? { signal } : {}),
      },
    );
    if (res.exitCode !== 0) {
      throw new TransferError(
        `setting the mode of ${names.length} file(s) on the instance failed (exit code ${res.exitCode})` +
          (stderr.trim() ? `: ${stderr.trim().split('\n').slice(-2).join('; ')}` : ''),
      );
    }
  }
}
