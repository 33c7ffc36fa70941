/**
 * Provider mutations bounded by the fleet's lease (several managers on PostgreSQL, README "Several
 * managers"): every `applyGroup`, `deleteGroup`, `increase` and `decrease` a manager makes runs in
 * a call window of its lease keeper (`LeaseKeeper.callWindow`). The call starts only under a lease
 * trusted — by the database's clock — for the whole call budget, gets a signal that ends it before
 * the lease could expire, and ends at once when the lease is lost or handed over; it is raced
 * against that signal, so a provider that ignores it cannot hold the caller (and the fleet's next
 * mutation) past the lease. Reads (`observe`, `heartbeat`, `connectInfo`, `discover`) are not
 * bounded: they change nothing.
 */
import type { Provider } from '../providers/provider.js';
import { ProviderRegistry } from '../providers/registry.js';
import { rejectOnAbort } from '../util/abort.js';
import type { CallWindow } from './lease-keeper.js';

/** What the bound needs of the lease keeper. */
export interface CallWindows {
  /** Throws FleetError(FENCED) when the lease does not cover a call now. */
  callWindow(fleet: string, what: string): CallWindow;
}

/** A registry whose providers make every mutation inside a call window of `windows`. */
export function leaseBoundRegistry(inner: ProviderRegistry, windows: CallWindows): ProviderRegistry {
  return new ProviderRegistry((spec) => leaseBound(inner.forFleet({ provider: spec, name: '' }), windows));
}

export function leaseBound(provider: Provider, windows: CallWindows): Provider {
  const bounded = <T>(
    fleet: string,
    what: string,
    signal: AbortSignal | undefined,
    call: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> => {
    let window: CallWindow;
    try {
      window = windows.callWindow(fleet, what);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    const both = signal ? AbortSignal.any([signal, window.signal]) : window.signal;
    const running = (async () => call(both))();
    // The window closes when the call has really ended, not when the race gave up on it: a
    // hand-over waits for that (up to the budget) before the database hands the fleet on.
    void running.then(window.done, window.done);
    return Promise.race([running, rejectOnAbort(both)]);
  };
  return {
    type: provider.type,
    observe: (groups, signal) => provider.observe(groups, signal),
    ...(provider.diffGroup ? { diffGroup: provider.diffGroup.bind(provider) } : {}),
    ...(provider.discover ? { discover: provider.discover.bind(provider) } : {}),
    applyGroup: (fleet, signal) =>
      bounded(fleet.name, `configure the group of fleet ${fleet.name}`, signal, (s) =>
        provider.applyGroup(fleet, s),
      ),
    deleteGroup: (ref, fleet, signal) =>
      bounded(ref.fleet, `delete group ${ref.name}`, signal, (s) => provider.deleteGroup(ref, fleet, s)),
    increase: (ref, n, signal) =>
      bounded(ref.fleet, `request ${n} instance(s) in group ${ref.name}`, signal, (s) =>
        provider.increase(ref, n, s),
      ),
    decrease: (ref, ids, signal) =>
      bounded(ref.fleet, `remove ${ids.length} instance(s) of group ${ref.name}`, signal, (s) =>
        provider.decrease(ref, ids, s),
      ),
    connectInfo: (ref, id, signal) => provider.connectInfo(ref, id, signal),
    heartbeat: (ref, id, signal) => provider.heartbeat(ref, id, signal),
  };
}
