/**
 * A job's log as GitLab receives it: masked per stream, cut at the output limit, kept in memory
 * (at most the limit plus a notice) with a running CRC32, so the sender can re-send any range and
 * the final update can state the checksum and size of exactly what was sent (§3, §4).
 */
import { crc32 } from 'node:zlib';
import { MaskerStream, MaskRules, type MaskerOptions } from './masker.js';
import { LineTimestamper, STREAM_RUNNER, STREAM_WORK } from './timestamper.js';

/** 4 MiB, GitLab Runner's default `output_limit`. */
export const DEFAULT_OUTPUT_LIMIT = 4 * 1024 * 1024;

/** Where a chunk came from. Each stream is masked on its own; `system` is runfleet's own text. */
export type TraceStream = 'stdout' | 'stderr' | 'system';

export interface TraceLogOptions extends MaskerOptions {
  /** Bytes after masking. @default DEFAULT_OUTPUT_LIMIT */
  outputLimit?: number;
  /**
   * Per-line timestamps (`FF_TIMESTAMPS`), added after masking: the clock to stamp lines with.
   * Without it lines carry no prefix.
   */
  timestamps?: { now: () => Date };
}

/** The notice written once when the log reaches the limit (§4). */
export function outputLimitNotice(limit: number): string {
  return (
    `\n\u001b[33;1mJob's log exceeded limit of ${limit} bytes. ` +
    `Job execution will continue but no more output will be collected.\u001b[0;m\n`
  );
}

export class TraceLog {
  readonly outputLimit: number;
  private readonly rules: MaskRules;
  private readonly streams = new Map<TraceStream, MaskerStream>();
  private readonly stampers = new Map<TraceStream, LineTimestamper>();
  private readonly timestamps: { now: () => Date } | undefined;
  /** Grows by doubling; a short job's whole log (banner, sections, a few lines) fits in 4 KiB. */
  private data = Buffer.allocUnsafe(4 * 1024);
  private size = 0;
  private crc = 0;
  private collected = 0;
  private exceeded = false;

  constructor(opts: TraceLogOptions) {
    this.rules = new MaskRules(opts);
    this.outputLimit = opts.outputLimit ?? DEFAULT_OUTPUT_LIMIT;
    this.timestamps = opts.timestamps;
  }

  /** Bytes in the log so far (what has been or will be sent). */
  get length(): number {
    return this.size;
  }

  /** Whether output is being discarded past the limit. */
  get limitExceeded(): boolean {
    return this.exceeded;
  }

  /** Whether the next byte starts a line: after `\n`, or after a section marker's `\r\e[0K`. */
  get atLineStart(): boolean {
    if (this.size === 0 || this.data[this.size - 1] === 0x0a) return true;
    return (
      this.size >= 5 && this.data.subarray(this.size - 5, this.size).toString('latin1') === '\r\u001b[0K'
    );
  }

  /** Masks and appends; part of the chunk may be held back until the next write to this stream. */
  write(chunk: Uint8Array | string, stream: TraceStream = 'stdout'): void {
    if (this.exceeded) return;
    this.append(this.stamp(stream, this.stream(stream).write(chunk)));
  }

  /**
   * Emits every stream's held-back bytes. Call when streams end (a stage finished) and before
   * runfleet's own lines, so they are not overtaken by earlier job output.
   */
  flush(): void {
    for (const [name, s] of this.streams) this.append(this.stamp(name, s.flush()));
    for (const t of this.stampers.values()) this.append(t.flush());
  }

  /** Runfleet's own text: masked too, never held back, after everything written before it. */
  writeSystem(text: string): void {
    this.flush();
    this.write(text, 'system');
    this.append(this.stamp('system', this.stream('system').flush()));
    const stamper = this.stampers.get('system');
    if (stamper) this.append(stamper.flush());
  }

  /** A copy of bytes `[from, to)`. */
  slice(from: number, to: number = this.size): Buffer {
    return Buffer.from(this.data.subarray(Math.max(0, from), Math.min(to, this.size)));
  }

  /** `crc32:%08x` of the whole log (CRC32-IEEE, as GitLab checks it). */
  checksum(): string {
    return 'crc32:' + (this.crc >>> 0).toString(16).padStart(8, '0');
  }

  /** The log as text, for tests and local display. */
  text(): string {
    return this.data.subarray(0, this.size).toString('utf8');
  }

  /** Masked bytes of `name`, with line prefixes when timestamps are on. */
  private stamp(name: TraceStream, masked: Buffer): Buffer {
    if (!this.timestamps || masked.length === 0) return masked;
    let t = this.stampers.get(name);
    if (!t) {
      const id = name === 'system' ? STREAM_RUNNER : STREAM_WORK;
      t = new LineTimestamper(id, name === 'stderr' ? 'E' : 'O', this.timestamps.now);
      this.stampers.set(name, t);
    }
    return t.write(masked);
  }

  private stream(name: TraceStream): MaskerStream {
    let s = this.streams.get(name);
    if (!s) this.streams.set(name, (s = new MaskerStream(this.rules)));
    return s;
  }

  private append(bytes: Buffer): void {
    if (bytes.length === 0 || this.exceeded) return;
    const room = this.outputLimit - this.collected;
    if (bytes.length < room) {
      this.store(bytes);
      this.collected += bytes.length;
      return;
    }
    // Like GitLab Runner's limitWriter: keep what fits, then the notice, then nothing more.
    this.store(bytes.subarray(0, room));
    this.collected += room;
    this.exceeded = true;
    this.store(Buffer.from(outputLimitNotice(this.outputLimit), 'utf8'));
  }

  private store(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.size + bytes.length > this.data.length) {
      // Doubling, but never past what the limit allows: many concurrent jobs share the manager's memory.
      const ceiling = this.outputLimit + 1024;
      const grown = Buffer.allocUnsafe(
        Math.max(Math.min(this.data.length * 2, ceiling), this.size + bytes.length),
      );
      this.data.copy(grown, 0, 0, this.size);
      this.data = grown;
    }
    this.data.set(bytes, this.size);
    this.size += bytes.length;
    this.crc = crc32(bytes, this.crc);
  }
}
