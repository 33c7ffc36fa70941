/**
 * Resolves a secret reference (`{env: NAME}` or `{file: PATH}`) at run time. Errors name the
 * reference, never the value.
 */
import { readFile } from 'node:fs/promises';
import { ErrorCode, FleetError } from '../errors.js';
import type { SecretRef } from '../model/fleet.js';

export async function resolveSecret(
  ref: SecretRef,
  what: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  if ('env' in ref) {
    const value = env[ref.env]?.trim();
    if (!value) {
      throw new FleetError(ErrorCode.CONFIG_INVALID, `${what}: environment variable ${ref.env} is not set`, {
        hint: `export ${ref.env}=<token> in the environment runfleet runs in`,
      });
    }
    return value;
  }
  let text: string;
  try {
    text = await readFile(ref.file, 'utf8');
  } catch (e) {
    throw new FleetError(
      ErrorCode.CONFIG_INVALID,
      `${what}: cannot read ${ref.file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        hint: 'check that the file exists and is readable by runfleet',
        cause: e,
      },
    );
  }
  const value = text.trim();
  if (!value) throw new FleetError(ErrorCode.CONFIG_INVALID, `${what}: ${ref.file} is empty`);
  return value;
}
