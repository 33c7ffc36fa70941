/**
 * Node's HTTP client treats whatever an agent's `createConnection` returns as a `net.Socket` and
 * may call `setKeepAlive`, `setNoDelay`, `setTimeout`, `ref` or `unref` on it. An SSH channel is
 * a plain Duplex: give it no-op versions so it can carry HTTP (the Docker API).
 */
import type { Duplex } from 'node:stream';

const SOCKET_METHODS = ['setKeepAlive', 'setNoDelay', 'setTimeout', 'ref', 'unref'] as const;

export function asSocketLike<T extends Duplex>(stream: T): T {
  const s = stream as unknown as Record<string, unknown>;
  for (const m of SOCKET_METHODS) {
    if (typeof s[m] !== 'function') s[m] = () => stream;
  }
  return stream;
}
