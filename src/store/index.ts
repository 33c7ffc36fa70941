/** The state store's public surface: the seam, the SQLite implementation and its schema version. */
import { hostname, userInfo } from 'node:os';

export type { ApplyRecord, Intent, LockInfo, StateStore } from './store.js';
export { DEFAULT_STATE_PATH, openSqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
export { LATEST_SCHEMA_VERSION } from './migrations.js';

/** `user@host pid N`: who a lock names, so an operator can find the holder. */
export function describeLockHolder(pid: number = process.pid): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    // userInfo throws when the uid has no passwd entry (common in containers).
    user = process.env['USER'] ?? 'unknown';
  }
  return `${user}@${hostname()} pid ${pid}`;
}
