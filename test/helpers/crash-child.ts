/**
 * Child process of the crash tests: runs `runfleet apply` or `runfleet watch` (until it is idle)
 * on the local provider in <dir>, and SIGKILLs itself when it reaches step number <crashAt> (from
 * 0), as `kill -9` or a power cut would. Every step reached is appended to <dir>/steps.log first,
 * so a run with crashAt -1 records the steps there are. <crashAt> may also name a step (its first
 * occurrence). Exit 0: finished without reaching it.
 * Usage: node crash-child.ts apply|watch <dir> <crashAt>
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { apply } from '../../src/cli/commands/apply.js';
import { startManager } from '../../src/cli/root.js';
import { crashingLocalProvider } from './crash-points.js';

const [mode, dir, at] = process.argv.slice(2) as ['apply' | 'watch', string, string];
const crashAt = Number(at);
let reached = 0;
const step = (name: string): void => {
  appendFileSync(join(dir, 'steps.log'), `${name}\n`);
  const hit = Number.isNaN(crashAt) ? name === at : reached === crashAt;
  reached++;
  if (hit) process.kill(process.pid, 'SIGKILL');
};
const opts = { dir: join(dir, 'fleets'), state: join(dir, '.runfleet', 'state.db'), color: false };
const provider = crashingLocalProvider(join(dir, '.runfleet'), step);
const quiet = {
  out: () => undefined,
  err: (text: string) => void process.stderr.write(`${text}\n`),
  color: false,
  interactive: false,
  prompt: async () => '',
};

if (mode === 'apply') {
  process.exit(await apply(opts, { autoApprove: true }, quiet, { providers: () => provider }));
}
const manager = await startManager(opts, {
  listen: '127.0.0.1:0',
  graceMs: 1000,
  intervalMs: 3_600_000,
  logger: (await import('../../src/util/logger.js')).silentLogger,
  providers: () => provider,
});
await manager.daemon.idle();
await manager.stop();
process.exit(0);
