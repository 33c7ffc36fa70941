/**
 * The two halves of a download that stream-extract.ts reads once: `Incoming`, the body as a queue
 * of chunks it pulls only when asked (so the SSH channel's backpressure reaches the HTTP socket),
 * and `SparseFile`, the bytes kept for the central directory pass, each written at its offset in
 * the archive (what was streamed to the instance is left as a hole).
 */
import type { FileHandle } from 'node:fs/promises';
import { TransferError } from './errors.js';

/** The body ended (or failed) before the bytes asked for. */
export class BodyEnded extends Error {}

export class Incoming {
  /** Offset in the archive of the first queued byte. */
  offset = 0;
  /** Bytes queued. */
  queued = 0;
  /** Why the body failed, if it did. */
  failure: unknown;
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private readonly it: AsyncIterator<Uint8Array>;

  constructor(
    body: AsyncIterable<Uint8Array>,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.it = body[Symbol.asyncIterator]();
  }

  /** Pulls until `n` bytes are queued; false if the body ended first. Throws if it failed. */
  async fill(n: number): Promise<boolean> {
    while (this.queued < n) {
      if (!(await this.pull())) return false;
    }
    return true;
  }

  /** One more chunk queued; false at the body's end. */
  async pull(): Promise<boolean> {
    if (this.ended) return false;
    let r: IteratorResult<Uint8Array>;
    try {
      this.signal?.throwIfAborted();
      r = await this.it.next();
    } catch (e) {
      this.ended = true;
      this.failure = e;
      throw e;
    }
    if (r.done) {
      this.ended = true;
      return false;
    }
    const c = r.value;
    if (c.byteLength > 0) {
      this.chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength));
      this.queued += c.byteLength;
    }
    return true;
  }

  /**
   * Stops reading: a body not read to its end is destroyed (an HTTP connection is not left
   * waiting on a reader that is gone). Never throws.
   */
  async close(): Promise<void> {
    this.chunks.length = 0;
    this.queued = 0;
    if (this.ended) return;
    this.ended = true;
    await this.it.return?.().catch(() => undefined);
  }

  /** `len` queued bytes from `rel` bytes past the front (copied only when they span chunks). */
  peek(rel: number, len: number): Buffer {
    if (rel + len > this.queued) throw new Error('peek past the queued bytes');
    let skip = rel;
    let i = 0;
    while (skip >= this.chunks[i]!.length) skip -= this.chunks[i++]!.length;
    const first = this.chunks[i]!;
    if (skip + len <= first.length) return first.subarray(skip, skip + len);
    const out = Buffer.allocUnsafe(len);
    let got = first.copy(out, 0, skip);
    while (got < len) got += this.chunks[++i]!.copy(out, got, 0, len - got);
    return out;
  }

  /** Removes `n` queued bytes from the front and returns them as they arrived (no copy). */
  take(n: number): Buffer[] {
    if (n > this.queued) throw new Error('take past the queued bytes');
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const c = this.chunks[0]!;
      if (c.length <= left) {
        out.push(c);
        this.chunks.shift();
        left -= c.length;
      } else {
        out.push(c.subarray(0, left));
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.queued -= n;
    this.offset += n;
    return out;
  }

  /** `n` bytes from the front as they arrive, pulling as they are consumed. */
  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.queued === 0 && !(await this.pull()))
        throw new BodyEnded('the download ended inside an entry');
      const parts = this.take(Math.min(left, this.queued));
      for (const p of parts) {
        left -= p.length;
        yield p;
      }
    }
  }

  /**
   * Where `sig` (4 bytes) first starts at or after `from` bytes past the front, within the queued
   * bytes; -1 if it does not (yet).
   */
  indexOf(sig: Buffer, from: number): number {
    let start = 0;
    let prev: Buffer | undefined;
    for (const c of this.chunks) {
      const end = start + c.length;
      if (prev && end > from) {
        // a signature across the boundary with the chunk before
        for (let k = Math.max(from, start - 3); k < start && k + 4 <= this.queued; k++) {
          if (this.peek(k, 4).equals(sig)) return k;
        }
      }
      if (end > from) {
        const i = c.indexOf(sig, Math.max(0, from - start));
        if (i >= 0) return start + i;
      }
      prev = c;
      start = end;
    }
    return -1;
  }
}

/** A file written at offsets as the archive's bytes come; what is never written stays a hole. */
export class SparseFile {
  /** The archive's length so far (holes included). */
  size = 0;

  constructor(private readonly fh: FileHandle) {}

  /** `parts`, one after the other, at `offset` (one writev, more only when it wrote less). */
  async write(offset: number, parts: readonly Buffer[]): Promise<void> {
    const total = parts.reduce((n, p) => n + p.length, 0);
    if (total === 0) return;
    let done = (await this.fh.writev(parts as Buffer[], offset)).bytesWritten;
    if (done < total) {
      const rest = Buffer.concat(parts as Buffer[], total).subarray(done);
      while (done < total) {
        const { bytesWritten } = await this.fh.write(
          rest,
          done - (total - rest.length),
          total - done,
          offset + done,
        );
        done += bytesWritten;
      }
    }
    this.size = Math.max(this.size, offset + total);
  }

  /** Makes the file as long as the archive (a hole at the end is still a hole). */
  async extendTo(length: number): Promise<void> {
    if (length > this.size) await this.fh.truncate(length);
    this.size = Math.max(this.size, length);
  }

  /** `start`..`end` of what was written, in pieces of at most `chunk` bytes. */
  async *range(start: number, end: number, chunk: number): AsyncGenerator<Buffer> {
    for (let pos = start; pos < end;) {
      const n = Math.min(chunk, end - pos);
      const buf = Buffer.allocUnsafe(n);
      const { bytesRead } = await this.fh.read(buf, 0, n, pos);
      if (bytesRead === 0) throw new TransferError('the spooled entry is shorter than its size');
      yield bytesRead === n ? buf : buf.subarray(0, bytesRead);
      pos += bytesRead;
    }
  }
}
