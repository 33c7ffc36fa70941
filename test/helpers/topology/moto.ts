/**
 * moto as the S3-compatible server of the cache tests, in the shape those tests use (`address`
 * as a cache block's `server_address` takes it, the request lines moto logged). Finding, starting
 * and stopping moto is test/helpers/moto.ts's: one moto_server per test file on a free loopback
 * port, owned by the test; missing, a loud skip, or a failure with CI=true.
 */
import type { Test } from 'tap';
import { motoOrSkip, startMoto as startMotoServer } from '../moto.js';
import type { Teardownable } from './sshd.js';

export interface Moto {
  /** `127.0.0.1:PORT`, as a cache block's `server_address` takes it. */
  address: string;
  endpoint: string;
  /** Every request line moto logged so far (method and path), for asserting what was called. */
  requests(): string[];
  stop(): Promise<void>;
}

let server: string | undefined;

/** True when moto_server is there; otherwise fails on CI or skips loudly, and returns false. */
export function requireMotoOrSkip(t: Pick<Test, 'skip' | 'fail'>): boolean {
  server = motoOrSkip(t);
  return server !== undefined;
}

/** Starts moto (after `requireMotoOrSkip`); stopped at teardown. */
export async function startMoto(t: Teardownable): Promise<Moto> {
  if (!server) throw new Error('moto_server is needed: call requireMotoOrSkip first');
  const moto = await startMotoServer(t, server);
  const requests = () => {
    const lines: string[] = [];
    for (const line of moto.log().split('\n')) {
      const m = /"(GET|PUT|POST|HEAD|DELETE) ([^ ]+) HTTP/.exec(line);
      if (m) lines.push(`${m[1]} ${m[2]}`);
    }
    return lines;
  };
  return { address: moto.url.replace(/^http:\/\//, ''), endpoint: moto.url, requests, stop: moto.stop };
}
