/** Filesystem calls of the local provider, with errors turned into PROVIDER errors with a hint. */
import { readdir, stat } from 'node:fs/promises';
import { FleetError, asError, isFleetError } from '../../errors.js';

/** Directory entries, or undefined when the directory does not exist. */
export async function listEntries(dir: string) {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if (errno(e) === 'ENOENT') return undefined;
    throw fsError(`read ${dir}`, e);
  }
}

export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (e) {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return false;
    throw fsError(`check ${path}`, e);
  }
}

export async function fsStep<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isFleetError(e)) throw e;
    throw fsError(what, e);
  }
}

export function fsError(what: string, e: unknown): FleetError {
  const code = errno(e);
  return new FleetError('PROVIDER', `local provider: cannot ${what}: ${asError(e).message}`, {
    hint:
      code === 'EACCES' || code === 'EPERM'
        ? 'check that runfleet may write its state directory'
        : 'check the disk and the state directory',
    // A full disk or a busy file may clear up; a permission problem will not.
    retryable: code !== 'EACCES' && code !== 'EPERM',
    cause: e,
  });
}

export function errno(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
