/**
 * Per-line timestamps of the job log (`FF_TIMESTAMPS`, on by default in GitLab Runner 17+; §4
 * "Timestamps"): each line starts with `<UTC time, RFC 3339 with 6 fraction digits>Z `, then a
 * two-digit hex stream number, the stream type (`O` stdout, `E` stderr) and a flag, ` ` for a new
 * line or `+` for a line that continues the previous one (a long line cut at 8 KiB, or one ended
 * early by a carriage return or a flush). GitLab's log viewer parses and hides this prefix.
 *
 * Applied after masking (GitLab Runner's order), so a secret is masked before lines are cut, and a
 * prefix can never split a secret the masker would otherwise recognise.
 */

/** GitLab Runner's stream numbers: 00 for the runner's own lines, 01 for the job's output. */
export const STREAM_RUNNER = 0;
export const STREAM_WORK = 1;

/** A partial line longer than this is written out and continued (GitLab Runner's bufSize). */
const MAX_BUFFERED = 8 * 1024;
const NL = 0x0a;
const EMPTY = Buffer.alloc(0);
const CR = 0x0d;

/** The last prefix made, by its millisecond: a burst of lines (1,000 jobs' headers) shares it. */
let lastMs = NaN;
let lastPrefix = '';

/** `2026-12-02T06:07:18.123000Z `: milliseconds from the clock, microseconds as zeros. */
export function timestampPrefix(date: Date): string {
  const ms = date.getTime();
  if (ms !== lastMs) {
    lastPrefix = `${date.toISOString().slice(0, 23)}000Z `;
    lastMs = ms;
  }
  return lastPrefix;
}

/** Parses one timestamped line back: time, stream, type, continuation flag and the text. */
export function parseTimestampedLine(
  line: string,
): { time: Date; stream: number; type: 'O' | 'E'; append: boolean; text: string } | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) ([0-9a-f]{2})([OE])([ +])/.exec(line);
  if (!m) return undefined;
  return {
    time: new Date(m[1]!),
    stream: parseInt(m[2]!, 16),
    type: m[3] as 'O' | 'E',
    append: m[4] === '+',
    text: line.slice(m[0].length),
  };
}

/** A piece of output: a header (latin1, one byte a character) or bytes of the job's output. */
type Part = Buffer | string;

/** `parts` in one buffer of `bytes`: a single allocation and copy for a whole write. */
function joinParts(parts: readonly Part[], bytes: number): Buffer {
  if (bytes === 0) return EMPTY;
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (const p of parts) at += typeof p === 'string' ? out.write(p, at, 'latin1') : p.copy(out, at);
  return out;
}

export class LineTimestamper {
  private readonly tag: string;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The next header continues the previous line (`+`). */
  private continues = false;
  private lastPrefix = '';
  private lastFlag = '';
  private lastHeader = '';

  constructor(
    stream: number,
    type: 'O' | 'E',
    private readonly now: () => Date,
  ) {
    this.tag = stream.toString(16).padStart(2, '0') + type;
  }

  /** Returns the bytes to append to the log now; a partial last line is held until its end. */
  write(chunk: Buffer): Buffer {
    if (chunk.length === 0) return EMPTY;
    // What goes out, as headers (latin1 strings) and slices of `chunk`, copied once at the end.
    const out: Part[] = [];
    let bytes = 0;
    const put = (p: Part): void => {
      out.push(p);
      bytes += p.length;
    };
    const lastNl = chunk.lastIndexOf(NL);
    let rest = chunk;
    if (lastNl >= 0) {
      let pos = 0;
      while (pos <= lastNl) {
        const end = chunk.indexOf(NL, pos) + 1;
        if (pos === 0 && this.pendingBytes > 0) {
          for (const p of this.takePending()) put(p);
        } else {
          put(this.header());
        }
        put(chunk.subarray(pos, end));
        pos = end;
      }
      rest = chunk.subarray(lastNl + 1);
    }
    if (rest.length > 0) {
      if (rest.includes(CR)) {
        // A progress bar's `\r`: show it now, as one entry, and continue on the next write.
        if (this.pendingBytes > 0) for (const p of this.takePending()) put(p);
        else put(this.header());
        put(rest);
        put('\n');
        this.continues = true;
      } else {
        if (this.pendingBytes === 0) this.pend(Buffer.from(this.header(), 'latin1'));
        // A copy: `chunk` may be a view of the caller's bytes (the masker passes unmasked output
        // on as it came), which need not stay as they are until the line ends.
        this.pend(Buffer.from(rest));
        if (this.pendingBytes > MAX_BUFFERED) {
          for (const p of this.takePending()) put(p);
          put('\n');
          this.continues = true;
        }
      }
    }
    return joinParts(out, bytes);
  }

  /** Ends a held partial line (`\n`); the stream's next output continues it with `+`. */
  flush(): Buffer {
    if (this.pendingBytes === 0) return EMPTY;
    const out = Buffer.concat([...this.takePending(), Buffer.from('\n')]);
    this.continues = true;
    return out;
  }

  /** The next line's header; the same string while the millisecond and the flag stay the same. */
  private header(): string {
    const prefix = timestampPrefix(this.now());
    const flag = this.continues ? '+' : ' ';
    this.continues = false;
    if (prefix !== this.lastPrefix || flag !== this.lastFlag) {
      this.lastPrefix = prefix;
      this.lastFlag = flag;
      this.lastHeader = `${prefix}${this.tag}${flag}`;
    }
    return this.lastHeader;
  }

  private pend(b: Buffer): void {
    this.pending.push(b);
    this.pendingBytes += b.length;
  }

  private takePending(): Buffer[] {
    const p = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    return p;
  }
}
