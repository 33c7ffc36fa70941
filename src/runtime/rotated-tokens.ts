/**
 * Where a rotated runner token is kept (docs/gitlab-job-api.md §1, "Token rotation"). GitLab revokes
 * the old token when it issues a new one, so the new one must survive a restart:
 *
 * - a `{file: PATH}` token reference: the file is rewritten with the new token (it stays the one
 *   source of truth, readable by other tools);
 * - always, and the only place for an `{env: NAME}` reference: `<state dir>/runner-tokens/<fleet>.json`
 *   (mode 0600), keyed by a SHA-256 of the configured token. At start the stored token replaces the
 *   configured one only while the configuration still holds the token it replaced; a token the
 *   operator puts into the configuration afterwards wins.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { SecretRef } from '../model/fleet.js';

interface StoredToken {
  configured_sha256: string;
  token: string;
  expires_at: string | null;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const fileOf = (stateDir: string, fleet: string) =>
  join(stateDir, 'runner-tokens', `${fleet.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);

/** The rotated token to use instead of `configured`, if one was stored for it. */
export async function loadRotatedToken(
  stateDir: string,
  fleet: string,
  configured: string,
): Promise<string | undefined> {
  let stored: Partial<StoredToken>;
  try {
    stored = JSON.parse(await readFile(fileOf(stateDir, fleet), 'utf8')) as Partial<StoredToken>;
  } catch {
    return undefined;
  }
  if (stored.configured_sha256 !== sha256(configured) || typeof stored.token !== 'string') return undefined;
  return stored.token || undefined;
}

async function writeSecretFile(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}

/**
 * Keeps `token`, which replaced `configured` (the token the fleet's configuration holds).
 * @throws when neither place could be written (the caller warns: the token lives in memory only)
 */
export async function saveRotatedToken(
  stateDir: string,
  fleet: string,
  ref: SecretRef,
  configured: string,
  token: string,
  expiresAt: string | undefined,
): Promise<void> {
  let fileError: unknown;
  if ('file' in ref) {
    await writeSecretFile(ref.file, `${token}\n`).catch((e: unknown) => (fileError = e));
  }
  const stored: StoredToken = { configured_sha256: sha256(configured), token, expires_at: expiresAt ?? null };
  await writeSecretFile(fileOf(stateDir, fleet), JSON.stringify(stored) + '\n');
  if (fileError) {
    const code = (fileError as NodeJS.ErrnoException).code ?? 'error';
    throw new Error(
      `cannot rewrite ${'file' in ref ? ref.file : ''} (${code}); kept in the state directory instead`,
    );
  }
}
