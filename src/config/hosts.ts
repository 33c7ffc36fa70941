/**
 * Static provider hosts: `host`, `host:port` or `[v6addr]:port`. Shared by validation and by the
 * static provider, so both read a host the same way.
 */

export interface HostPort {
  host: string;
  /** Absent when the entry names none: the connector's port applies. */
  port?: number;
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$/;
const IPV6 = /^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$/;

/** Parses one host entry; undefined when it is not `host`, `host:port` or `[v6]:port`. */
export function parseHostPort(entry: string): HostPort | undefined {
  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(entry);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
    if (!IPV6.test(host) || !host.includes(':')) return undefined;
  } else {
    const parts = entry.split(':');
    if (parts.length > 2) return undefined;
    host = parts[0]!;
    portText = parts[1];
    if (!HOSTNAME.test(host)) return undefined;
  }
  if (portText === undefined) return { host };
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  return port >= 1 && port <= 65535 ? { host, port } : undefined;
}
