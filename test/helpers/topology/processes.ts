/** Process-table helpers for tests that must prove nothing was left running. */
import { readdirSync, readFileSync } from 'node:fs';

interface ProcInfo {
  pid: number;
  ppid: number;
  cmdline: string;
}

export function listProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // The command name is in parentheses and may contain spaces: ppid is after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      out.push({ pid: Number(name), ppid, cmdline });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** Processes whose command line contains `needle`. */
export function processesMatching(needle: string): ProcInfo[] {
  return listProcesses().filter((p) => p.cmdline.includes(needle) && p.pid !== process.pid);
}

/** Every descendant of `pid` (not `pid` itself). */
export function descendants(pid: number): number[] {
  const all = listProcesses();
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const p of all) {
      if (p.ppid === parent) {
        found.push(p.pid);
        queue.push(p.pid);
      }
    }
  }
  return found;
}

/** Polls `check` until it is true or `timeoutMs` passes; returns the last result. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  stepMs = 50,
): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

const reapers = new Set<() => void>();
let signalsHooked = false;

/**
 * Runs `reap` if this test process ends before its teardown: on a normal exit, and also when tap
 * kills the file on its timeout (SIGTERM/SIGINT, which skip 'exit' handlers by default), so no
 * sshd or dockerd outlives the test. Returns the unregister function.
 */
export function onProcessEnd(reap: () => void): () => void {
  reapers.add(reap);
  if (!signalsHooked) {
    signalsHooked = true;
    const runAll = () => {
      for (const fn of [...reapers]) {
        try {
          fn();
        } catch {
          // keep reaping the others
        }
      }
    };
    process.once('exit', runAll);
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      process.once(sig, () => {
        runAll();
        process.exit(sig === 'SIGTERM' ? 143 : 130);
      });
    }
  }
  return () => reapers.delete(reap);
}
