/**
 * The text conventions GitLab renders in a job log (§4): collapsible section markers and the
 * runner's coloured lines. Pure string builders; JobTrace writes them.
 */

export interface SectionOptions {
  collapsed?: boolean;
  hideDuration?: boolean;
}

const ESC = '\u001b';
/** Ends every marker: carriage return plus "erase line", so terminals show nothing of it. */
const MARKER_END = `\r${ESC}[0K`;

/** Section names GitLab accepts: `[a-zA-Z0-9_.-]`; anything else becomes `_`. */
export function sectionName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_.-]/g, '_') || '_';
}

export function sectionStartMarker(unixSeconds: number, name: string, options?: SectionOptions): string {
  const opts: string[] = [];
  if (options?.collapsed) opts.push('collapsed=true');
  if (options?.hideDuration) opts.push('hide_duration=true');
  const suffix = opts.length > 0 ? `[${opts.join(',')}]` : '';
  return `section_start:${unixSeconds}:${sectionName(name)}${suffix}${MARKER_END}`;
}

export function sectionEndMarker(unixSeconds: number, name: string): string {
  return `section_end:${unixSeconds}:${sectionName(name)}${MARKER_END}`;
}

const RESET = `${ESC}[0;m`;

/** GitLab Runner's line styles (`R:helpers/ansi.go`); each returns a whole line. */
export const style = {
  heading: (text: string) => `${ESC}[36;1m${text}${RESET}\n`,
  command: (cmd: string) => `${ESC}[32;1m$ ${cmd}${RESET}\n`,
  warning: (text: string) => `${ESC}[0;33mWARNING: ${text}${RESET}\n`,
  error: (text: string) => `${ESC}[31;1mERROR: ${text}${RESET}\n`,
  /** The last line of a successful job. */
  jobSucceeded: () => `${ESC}[32;1mJob succeeded${RESET}\n`,
  /** The last line of a failed job: `ERROR: Job failed: <reason>`. */
  jobFailed: (reason: string) => `${ESC}[31;1mERROR: Job failed: ${reason}${RESET}\n`,
  /** The opening lines: "Running with runfleet <ver> (<rev>)", "  on <name> <short token>, system ID: <id>". */
  banner: (b: {
    version: string;
    revision: string;
    runnerName: string;
    shortToken: string;
    systemId: string;
  }) =>
    `Running with runfleet ${b.version} (${b.revision})\n  on ${b.runnerName} ${b.shortToken}, system ID: ${b.systemId}\n`,
} as const;
