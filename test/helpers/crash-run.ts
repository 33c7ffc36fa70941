/** Runs test/helpers/crash-child.mjs (on the compiled dist) and reports how it ended; reads what the crash left. */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const CHILD = resolve(import.meta.dirname, 'crash-child.mjs');

export interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** `crashAt`: a step number (from 0), a step name, or -1 to record every step without dying. */
export function runCrashChild(mode: 'apply' | 'watch', dir: string, crashAt: number | string) {
  return new Promise<ChildEnd>((done) => {
    const child = spawn(process.execPath, [CHILD, mode, dir, String(crashAt)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => done({ code, signal, stderr }));
  });
}

/** The steps a run reached, in order (see crash-child.mjs). */
export function recordedSteps(dir: string): string[] {
  const file = join(dir, 'steps.log');
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

/** Ids of the complete sandboxes of a local group, as the filesystem has them. */
export function sandboxIds(dir: string, group: string): string[] {
  const groupDir = join(dir, '.runfleet', 'local', group);
  if (!existsSync(groupDir)) return [];
  return readdirSync(groupDir)
    .filter((name) => /^local-[0-9a-f]+$/.test(name) && existsSync(join(groupDir, name, 'instance.json')))
    .sort();
}
