/** What a command may do to the terminal. Injected so tests can capture output and answer prompts. */
import { createInterface } from 'node:readline/promises';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Colour on stdout: only on a TTY, never with NO_COLOR or --no-color. */
  color: boolean;
  /** Whether a human can answer a prompt. */
  interactive: boolean;
  prompt(question: string): Promise<string>;
}

export function processIo(opts: { noColor?: boolean } = {}): Io {
  // `runfleet state list | head`: a closed pipe ends the output quietly, not with a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  const color = Boolean(process.stdout.isTTY) && !opts.noColor && !('NO_COLOR' in process.env);
  return {
    out: (text) => process.stdout.write(text.endsWith('\n') ? text : text + '\n'),
    err: (text) => process.stderr.write(text.endsWith('\n') ? text : text + '\n'),
    color,
    interactive: Boolean(process.stdin.isTTY),
    async prompt(question) {
      const rl = createInterface({ input: process.stdin, output: process.stdout });
      try {
        return await rl.question(question);
      } finally {
        rl.close();
      }
    },
  };
}

/** Minimal ANSI styling that degrades to plain text when colour is off. */
export function styler(color: boolean) {
  const wrap = (code: string) => (s: string) => (color ? `\u001b[${code}m${s}\u001b[0m` : s);
  return { bold: wrap('1'), red: wrap('31'), green: wrap('32'), yellow: wrap('33'), dim: wrap('2') };
}

/** Fixed-width text table; columns sized to content. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}
