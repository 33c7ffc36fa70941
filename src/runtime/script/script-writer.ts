/**
 * Writes one stage script in the shape of GitLab Runner's `BashWriter` (docs/gitlab-job-api.md §5,
 * "Bash wrapper"), restricted to POSIX `sh` so it runs unchanged under dash, busybox ash or bash:
 * the body is one `eval` of a single-quoted string with stdin from `/dev/null`, so a command that
 * reads stdin can never swallow the rest of a script that arrives on the shell's stdin.
 */
import type { JobVariable } from '../gitlab/job.js';
import { isShellName, shellQuote } from './shell-quote.js';

const GREEN = '\x1b[32;1m';
const RESET = '\x1b[0;m';

/**
 * The shell script that runs a stage script given on stdin: bash when the machine or image has
 * it, else plain `sh`. Only POSIX `sh` is assumed; the script itself never needs bash.
 */
export const SHELL_DETECT_SCRIPT = 'if command -v bash >/dev/null 2>&1; then exec bash -s; fi; exec sh -s';

/** `SHELL_DETECT_SCRIPT` as one command line, for connectors that take a string. */
export const SHELL_DETECT_COMMAND = `sh -c ${shellQuote(SHELL_DETECT_SCRIPT)}`;

/** The wrapper's lines before the body's `eval` (the same for every script). */
const WRAPPER_HEAD = [
  "trap 'exit 1' TERM",
  // `set -o pipefail` is not in every sh (old dash): probe in a subshell so the failure of a
  // special builtin cannot end the script; bash has it, and needs no probe (no fork).
  'if [ -n "${BASH_VERSION-}" ] || (set -o pipefail) 2>/dev/null; then set -o pipefail; fi',
  'set -o errexit',
  'set +o noclobber',
  '',
].join('\n');

export class ScriptWriter {
  private readonly lines: string[] = [];

  /** A line of shell, verbatim. Callers quote every value they put in it. */
  raw(line: string): this {
    this.lines.push(line);
    return this;
  }

  /** Prints `text` in green, as the runner's notices look in the job log. */
  notice(text: string): this {
    return this.raw(`printf '%s\\n' ${shellQuote(`${GREEN}${text}${RESET}`)}`);
  }

  /**
   * A user command: echoed as a green `$ cmd`, run, and the script stops with the command's exit
   * code if it failed (errexit does not apply inside every compound command, so check explicitly).
   */
  userCommand(cmd: string): this {
    this.notice(`$ ${cmd}`);
    this.raw(cmd);
    return this.raw(
      '_runner_exit_code=$?; if [ "$_runner_exit_code" -ne 0 ]; then exit "$_runner_exit_code"; fi',
    );
  }

  cd(dir: string): this {
    return this.raw(`cd ${shellQuote(dir)}`);
  }

  /**
   * `export K='v'` per variable. A file variable's value goes to `<tmpDir>/<KEY>` and its path is
   * exported instead. Keys that are not shell names cannot be exported and are skipped.
   */
  exportVariables(vars: JobVariable[], tmpDir: string): this {
    const files = vars.filter((v) => v.file && isShellName(v.key));
    if (files.length > 0) {
      // umask in one subshell for all of them: file variables are often keys and certificates.
      const writes = files.map(
        (v) => `printf '%s' ${shellQuote(v.value)} > ${shellQuote(`${tmpDir}/${v.key}`)}`,
      );
      this.raw(`[ -d ${shellQuote(tmpDir)} ] || mkdir -p ${shellQuote(tmpDir)}`);
      this.raw(`(umask 077; ${writes.join('; ')})`);
    }
    for (const v of vars) {
      if (!isShellName(v.key)) continue;
      const value = v.file ? `${tmpDir}/${v.key}` : v.value;
      this.raw(`export ${v.key}=${shellQuote(value)}`);
    }
    return this;
  }

  /**
   * The body alone, without the wrapper's options and `exit`: for a script of runfleet's own that
   * may run in the caller's shell (its exit status is its last command's).
   */
  plain(): string {
    return this.lines.length === 0 ? '' : `${this.lines.join('\n')}\n`;
  }

  /** The whole script: the wrapper around the body. */
  finish(): string {
    return `${WRAPPER_HEAD}eval ${shellQuote(`${this.lines.join('\n')}\n`)} </dev/null\nexit 0\n`;
  }
}
