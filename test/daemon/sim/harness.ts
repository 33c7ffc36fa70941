/** Builds a daemon on the simulated provider, an in-memory store and manual timers. */
import { validateFleetTexts } from '../../../src/config/index.js';
import { Daemon, type DaemonOptions } from '../../../src/daemon/daemon.js';
import { memoryLogger } from '../../../src/util/logger.js';
import type { ReadinessProbe } from '../../../src/runtime/readiness-probe.js';
import { ProviderRegistry } from '../../../src/providers/registry.js';
import { openSqliteStore } from '../../../src/store/index.js';
import type { StateStore } from '../../../src/store/store.js';
import { ManualTimers } from './manual-timers.js';
import { SlotScheduler } from '../../../src/runtime/slots/scheduler.js';
import { LedgerWriter } from '../../../src/store/ledger-writer.js';
import { SimProvider, type SimOptions } from './sim-provider.js';

export interface SimSetup {
  fleets: Record<string, string>;
  start?: string;
  sim?: Omit<SimOptions, 'clock'>;
  probe?: ReadinessProbe;
  daemon?: Partial<DaemonOptions>;
}

export async function simulate(setup: SimSetup) {
  const timers = new ManualTimers(setup.start ?? '2026-03-02T10:00:00Z');
  const clock = timers.clock;
  const sim = new SimProvider({ clock, ...setup.sim });
  const store: StateStore = await openSqliteStore(':memory:', { clock });
  const files = { ...setup.fleets };
  const log = memoryLogger();
  let scope = timers.scope();

  const build = () => {
    scope = timers.scope();
    const ledger = new LedgerWriter(store);
    const d = new Daemon({
      store,
      ledger,
      slots: new SlotScheduler({ ledger, time: scope, logger: log }),
      providers: new ProviderRegistry(() => sim),
      loadConfig: async () =>
        validateFleetTexts(Object.entries(files).map(([file, text]) => ({ file, text }))),
      time: scope,
      logger: log,
      probe: setup.probe ?? (async () => ({ ok: true })),
      isLockHolderAlive: () => false,
      lockHolder: 'sim@host pid 1',
      ...setup.daemon,
    });
    sim.isBusy = (fleet, id) => d.slots.isBusy(fleet, id);
    return d;
  };
  const h = {
    timers,
    clock,
    sim,
    store,
    files,
    log,
    daemon: build(),
    /** Lets every pass, probe and ledger write finish. */
    async settle(): Promise<void> {
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setImmediate(r));
        await Promise.race([h.daemon.idle(), new Promise((r) => setImmediate(r))]);
      }
      await new Promise((r) => setImmediate(r));
    },
    advance: (ms: number) => timers.advance(ms, () => h.settle()),
    async jumpTo(iso: string): Promise<void> {
      await timers.advance(Date.parse(iso) - clock.now().getTime(), () => h.settle());
    },
    /** The daemon dies without any cleanup: its timers stop, its lock and intents stay. */
    crashAndRestart(): Daemon {
      scope.dispose();
      h.daemon = build();
      return h.daemon;
    },
    live: (group: string) => sim.live(group).length,
  };
  return h;
}

export const minutes = (n: number) => n * 60_000;
