/**
 * The local provider with a crash point at every step that matters to consistency: each step of
 * building a sandbox (`create:directory` … `create:renamed`), the moment `increase` returns (the
 * sandboxes exist, nothing is recorded yet), and before and after each single removal.
 */
import { createLocalProvider } from '../../src/providers/local/index.js';
import type { Provider } from '../../src/providers/provider.js';

export function crashingLocalProvider(stateDir: string, step: (name: string) => void): Provider {
  const inner = createLocalProvider({ stateDir, onCreateStep: (s) => step(`create:${s}`) });
  return {
    ...inner,
    async increase(ref, n, signal) {
      const requested = await inner.increase(ref, n, signal);
      step('increase:returned');
      return requested;
    },
    async decrease(ref, ids, signal) {
      const removed: string[] = [];
      for (const id of ids) {
        step('decrease:before');
        removed.push(...(await inner.decrease(ref, [id], signal)));
        step('decrease:removed');
      }
      return removed;
    },
  };
}
