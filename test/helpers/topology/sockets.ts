/** Which TCP connections this process holds open, read from /proc (Linux). */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** `0100007F:08AE` (little-endian IPv4 as /proc/net/tcp writes it) → `127.0.0.1:2222`. */
function decode(hex: string): string {
  const [ip = '', port = ''] = hex.split(':');
  const bytes = (ip.match(/../g) ?? []).map((b) => parseInt(b, 16)).reverse();
  return `${bytes.join('.')}:${parseInt(port, 16)}`;
}

/** Remote `host:port` of every IPv4 TCP socket this process has a file descriptor for. */
export function openTcpPeers(): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1] as string);
    } catch {
      // closed while we looked
    }
  }
  const peers: string[] = [];
  for (const line of readFileSync('/proc/self/net/tcp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length > 9 && inodes.has(cols[9] as string)) peers.push(decode(cols[2] as string));
  }
  return peers;
}
