/**
 * POSIX shell quoting. Everything runfleet puts into a job script goes through `shellQuote`, so no
 * value (a variable, a path, a URL) is ever expanded or split by the shell that runs the script.
 */

/**
 * Quotes `value` as one POSIX shell word that stands for exactly these bytes: wrapped in single
 * quotes, each `'` written as `'\''`. Inside single quotes nothing is special (`$`, `\`, `` ` ``,
 * newlines), so this is correct for every shell runfleet targets (dash, busybox ash, bash, zsh).
 */
export function shellQuote(value: string): string {
  if (value === '') return "''";
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A shell variable name: what `export NAME=...` accepts. */
export function isShellName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);
}
