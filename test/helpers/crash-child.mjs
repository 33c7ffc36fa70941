/**
 * Child process of the crash tests: runs `runfleet apply` or `runfleet watch` (until it is idle)
 * on the local provider in <dir>, and SIGKILLs itself when it reaches step number <crashAt> (from
 * 0), as `kill -9` or a power cut would. Every step reached is appended to <dir>/steps.log first,
 * so a run with crashAt -1 records the steps there are. <crashAt> may also name a step (its first
 * occurrence). Exit 0: finished without reaching it.
 *
 * The steps are the ones that matter to consistency: each step of building a sandbox
 * (`create:directory` … `create:renamed`), the moment `increase` returns (the sandboxes exist,
 * nothing is recorded yet), and before and after each single removal.
 *
 * Plain JavaScript on the compiled dist (`npm test` builds it first): a child on the TypeScript
 * loader takes seconds to start, and the harness starts dozens.
 * Usage: node crash-child.mjs apply|watch <dir> <crashAt>
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { apply } from '../../dist/cli/commands/apply.js';
import { startManager } from '../../dist/cli/root.js';
import { createLocalProvider } from '../../dist/providers/local/index.js';
import { silentLogger } from '../../dist/util/logger.js';

const [mode, dir, at] = process.argv.slice(2);
const crashAt = Number(at);
let reached = 0;
const step = (name) => {
  appendFileSync(join(dir, 'steps.log'), `${name}\n`);
  const hit = Number.isNaN(crashAt) ? name === at : reached === crashAt;
  reached++;
  if (hit) process.kill(process.pid, 'SIGKILL');
};

const inner = createLocalProvider({
  stateDir: join(dir, '.runfleet'),
  onCreateStep: (s) => step(`create:${s}`),
});
const provider = {
  ...inner,
  async increase(ref, n, signal) {
    const requested = await inner.increase(ref, n, signal);
    step('increase:returned');
    return requested;
  },
  async decrease(ref, ids, signal) {
    const removed = [];
    for (const id of ids) {
      step('decrease:before');
      removed.push(...(await inner.decrease(ref, [id], signal)));
      step('decrease:removed');
    }
    return removed;
  },
};
const opts = { dir: join(dir, 'fleets'), state: join(dir, '.runfleet', 'state.db'), color: false };
const io = {
  out: () => undefined,
  err: (text) => void process.stderr.write(`${text}\n`),
  color: false,
  interactive: false,
  prompt: async () => '',
};

if (mode === 'apply') {
  process.exit(await apply(opts, { autoApprove: true }, io, { providers: () => provider }));
}
const manager = await startManager(opts, {
  listen: '127.0.0.1:0',
  graceMs: 1000,
  intervalMs: 3_600_000,
  logger: silentLogger,
  providers: () => provider,
});
await manager.daemon.idle();
await manager.stop();
process.exit(0);
