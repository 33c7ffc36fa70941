/**
 * Streaming log masker, steps 1–3 of GitLab Runner's trace chain (§4): masked variable values,
 * sensitive URL query parameters and GitLab token prefixes, also when a secret is split across
 * writes. Works on bytes; JS strings hold them as latin1 (one char per byte) so regexes apply.
 */

export const MASK = '[MASKED]';
const EMPTY = Buffer.alloc(0);

/**
 * Token prefixes masked by default (`FF_MASK_ALL_DEFAULT_TOKENS`, on by default), followed by
 * `[A-Za-z0-9._=-]+`. The prefix stays; the token becomes `[MASKED]` (`glpat-[MASKED]`).
 */
export const DEFAULT_TOKEN_PREFIXES: readonly string[] = [
  'glpat-',
  'gldt-',
  'glrt-',
  'glcbt-',
  'glptt-',
  'glft-',
  'glimt-',
  'glagent-',
  'glsoat-',
  'glffct-',
  'gloas-',
  'glrtr-',
  'gltok-',
  '_gitlab_session=',
];

/** URL query parameters whose values are masked (`R:helpers/trace/mask.go`), case-insensitively. */
const SENSITIVE_URL_PARAMS = [
  'private_token',
  'authenticity_token',
  'rss_token',
  'x-amz-signature',
  'x-amz-credential',
];

const TOKEN_CHAR = /[A-Za-z0-9._=-]/;
const URL_VALUE_CHAR = /[^&\s]/;

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
// ASCII is the same in both (most secrets and every prefix): no Buffer round trip. A string is
// ASCII when its UTF-8 form has a byte per character (native, cheaper than a regex per chunk).
const toLatin1 = (s: string) =>
  Buffer.byteLength(s, 'utf8') === s.length ? s : Buffer.from(s, 'utf8').toString('latin1');
const caseless = (s: string) =>
  [...s].map((c) => (/[a-z]/i.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : escapeRegex(c))).join('');

export interface MaskerOptions {
  /** Values of `masked: true` variables; empty ones are ignored. */
  secrets: readonly string[];
  /** The job's `features.token_mask_prefixes`, added to the defaults. */
  tokenPrefixes?: readonly string[];
}

/**
 * The compiled patterns, shared by every stream of one job. Each stream keeps its own state in a
 * `MaskerStream` so interleaved stdout and stderr cannot hide a secret from each other.
 */
/**
 * URL parameters and token prefixes, one pattern per set of prefixes, compiled once per process:
 * every job has its own secrets (its job token at least), and compiling one pattern of secrets and
 * prefixes for each job cost more CPU than masking its whole log (bench/dispatch). Secrets are
 * found with `indexOf` instead.
 */
const TOKEN_PATTERNS = new Map<string, RegExp>();
function tokenPattern(prefixes: readonly string[]): RegExp {
  const key = prefixes.join('\u0000');
  let re = TOKEN_PATTERNS.get(key);
  if (!re) {
    re = new RegExp(
      `(?<url>[?&](?:${SENSITIVE_URL_PARAMS.map(caseless).join('|')})=)[^&\\s]*|` +
        `(?<prefix>${prefixes.map(escapeRegex).join('|')})[A-Za-z0-9._=-]+`,
      'g',
    );
    if (TOKEN_PATTERNS.size < 64) TOKEN_PATTERNS.set(key, re);
  }
  return re;
}

/** One place to mask: a secret, or a token / URL value (`prefix` is what stays visible). */
interface MaskMatch {
  index: number;
  text: string;
  prefix?: string;
  url: boolean;
}

export class MaskRules {
  /** Shared between jobs: used with `lastIndex` inside one synchronous `find`, never across awaits. */
  private readonly tokens: RegExp;
  private readonly starts: { text: string; caseless: boolean; whole: boolean }[] = [];
  /** First characters of `starts`: most positions are ruled out by this alone. */
  private readonly firstChars = new Set<string>();
  readonly longestPartial: number;
  private readonly secrets: string[];

  constructor(opts: MaskerOptions) {
    const values = new Set<string>();
    for (const s of opts.secrets) {
      if (!s) continue;
      values.add(toLatin1(s));
      // Secrets also show up URL-encoded, e.g. in a clone URL.
      const encoded = encodeURIComponent(s);
      if (encoded !== s) values.add(toLatin1(encoded));
    }
    this.secrets = [...values].sort((a, b) => b.length - a.length);
    const prefixes = [
      ...new Set([
        ...DEFAULT_TOKEN_PREFIXES,
        ...(opts.tokenPrefixes ?? []).map((p) => p.trim()).filter(Boolean),
      ]),
    ].map(toLatin1);

    this.tokens = tokenPattern(prefixes);

    // A tail may begin a secret if it is a proper prefix of one (a whole secret is matched by the
    // pattern), or any prefix of a token prefix or URL key: `glpat-` at the end of a write still
    // needs the next one. Compared directly rather than through a set of all prefixes, which
    // would cost memory quadratic in the length of a long masked value (a certificate, say).
    for (const secret of this.secrets) this.starts.push({ text: secret, caseless: false, whole: false });
    for (const prefix of prefixes) this.starts.push({ text: prefix, caseless: false, whole: true });
    for (const p of SENSITIVE_URL_PARAMS) {
      this.starts.push(
        { text: `?${p}=`, caseless: true, whole: true },
        { text: `&${p}=`, caseless: true, whole: true },
      );
    }
    for (const start of this.starts) {
      const first = start.text[0] ?? '';
      this.firstChars.add(first);
      if (start.caseless) this.firstChars.add(first.toUpperCase());
    }
    this.longestPartial = Math.max(
      0,
      ...this.starts.map((x) => (x.whole ? x.text.length : x.text.length - 1)),
    );
  }

  /** Whether `text` at `from` to its end may be the beginning of a secret, token or URL key. */
  isPartialAt(text: string, from: number): boolean {
    if (!this.firstChars.has(text[from] ?? '')) return false;
    const tail = text.slice(from);
    return this.starts.some((start) => {
      if (tail.length > start.text.length || (!start.whole && tail.length === start.text.length))
        return false;
      return start.text.startsWith(start.caseless ? tail.toLowerCase() : tail);
    });
  }

  /**
   * The leftmost thing to mask in `text` at or after `from`. At one position a secret wins over a
   * token or URL value, and a longer secret over a shorter one (as one alternation, secrets first
   * and longest first, would match). `next` caches each secret's next position for one text.
   */
  find(text: string, from: number, next: number[]): MaskMatch | undefined {
    let best: MaskMatch | undefined;
    for (let k = 0; k < this.secrets.length; k++) {
      const secret = this.secrets[k]!;
      let at = next[k] ?? -2;
      if (at !== -1 && at < from) at = next[k] = text.indexOf(secret, from);
      if (at >= 0 && (!best || at < best.index)) best = { index: at, text: secret, url: false };
    }
    const re = this.tokens;
    re.lastIndex = from;
    const m = re.exec(text);
    if (m && (!best || m.index < best.index)) {
      const url = m.groups?.['url'];
      best = { index: m.index, text: m[0], prefix: url ?? m.groups?.['prefix'], url: url !== undefined };
    }
    return best;
  }

  /** Whether a longer secret could still match where `text` (a complete match) begins. */
  couldGrow(text: string): boolean {
    return this.secrets.some((s) => s.length > text.length && s.startsWith(text));
  }
}

/** One output stream's masking state. */
export class MaskerStream {
  private held = '';
  /** Inside a token or URL value already masked: swallow its remaining characters. */
  private swallowing: RegExp | undefined;

  constructor(private readonly rules: MaskRules) {}

  /** Masks `chunk` and returns the bytes safe to emit now; a possible secret start is held back. */
  write(chunk: Uint8Array | string): Buffer {
    if (typeof chunk === 'string')
      return Buffer.from(this.process(this.held + toLatin1(chunk), false), 'latin1');
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const data = bytes.toString('latin1');
    const held = this.held;
    const out = this.process(held === '' ? data : held + data, false);
    // Most output has nothing to mask and nothing to hold back: the chunk itself goes on (a view
    // of the caller's bytes, which the trace copies before it returns), not a copy of it.
    return held === '' && out === data ? bytes : Buffer.from(out, 'latin1');
  }

  /** Emits whatever is held: the stream ended, so a partial secret can no longer complete. */
  flush(): Buffer {
    // Most flushes (one before each of runfleet's own lines) find nothing held.
    if (this.held === '' && !this.swallowing) return EMPTY;
    const out = this.process(this.held, true);
    this.swallowing = undefined;
    return Buffer.from(out, 'latin1');
  }

  private process(input: string, atEnd: boolean): string {
    this.held = '';
    let text = input;
    if (this.swallowing) {
      let i = 0;
      while (i < text.length && this.swallowing.test(text[i] as string)) i++;
      if (i === text.length && !atEnd) return '';
      this.swallowing = undefined;
      text = text.slice(i);
    }

    let out = '';
    let pos = 0;
    const next: number[] = [];
    for (let m = this.rules.find(text, 0, next); m; m = this.rules.find(text, pos, next)) {
      const start = m.index;
      const end = start + m.text.length;
      const prefix = m.prefix;
      if (!atEnd && end === text.length) {
        if (prefix !== undefined) {
          // The token runs to the end of what we have: mask it now and swallow its continuation.
          out += text.slice(pos, start) + prefix + MASK;
          this.swallowing = m.url ? URL_VALUE_CHAR : TOKEN_CHAR;
          return out;
        }
        if (this.rules.couldGrow(m.text)) {
          out += text.slice(pos, start);
          this.held = text.slice(start);
          return out;
        }
      }
      out += text.slice(pos, start) + (prefix !== undefined ? prefix + MASK : MASK);
      pos = end;
    }
    if (atEnd) return out + text.slice(pos);

    const from = Math.max(pos, text.length - this.rules.longestPartial);
    for (let i = from; i < text.length; i++) {
      if (this.rules.isPartialAt(text, i)) {
        this.held = text.slice(i);
        return out + text.slice(pos, i);
      }
    }
    return out + text.slice(pos);
  }
}
