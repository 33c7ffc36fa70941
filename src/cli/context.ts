/**
 * The composition root: the one place that builds the store, the providers and the time, and
 * hands them to commands. Nothing else constructs clients.
 */
import { dirname, resolve } from 'node:path';
import type { Fleet } from '../model/fleet.js';
import { ErrorCode, FleetError } from '../errors.js';
import type { Provider } from '../providers/provider.js';
import { ProviderRegistry, type ProviderBuilder } from '../providers/registry.js';
import { createLocalProvider } from '../providers/local/index.js';
import { createStaticProvider } from '../providers/static/index.js';
import type { GroupRef } from '../model/observed.js';
import { openSqliteStore } from '../store/index.js';
import type { StateStore } from '../store/store.js';
import { systemTime, type Time } from '../util/time.js';

export interface GlobalOptions {
  dir: string;
  state: string;
  color: boolean;
}

export interface Context {
  store: StateStore;
  providers: ProviderRegistry;
  time: Time;
  /** Directory holding the state file; the local provider keeps its sandboxes here. */
  stateDir: string;
  /** Replaces the fleets providers look connector settings up in (the daemon calls it on reload). */
  track(fleets: Fleet[]): void;
  /** Loads provider code the fleets need (the AWS SDK) before any of them is used. */
  ensureProviders(fleets: Pick<Fleet, 'provider'>[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens the store and prepares providers for the given fleets. The AWS SDK is imported only when a
 * fleet uses it, so local-only runs start fast.
 */
export async function openContext(
  opts: GlobalOptions,
  fleets: Fleet[],
  load: {
    /** Test seam: builds every fleet's provider instead of the built-in ones (e.g. real sshds). */
    providers?: ProviderBuilder;
  } = {},
): Promise<Context> {
  const statePath = resolve(opts.state);
  const stateDir = dirname(statePath);
  const time = systemTime;
  const store = await openSqliteStore(statePath);
  let aws: typeof import('../providers/aws/index.js') | undefined;
  const ensureProviders = async (specs: Pick<Fleet, 'provider'>[]) => {
    if (!aws && specs.some((f) => f.provider.type === 'aws')) aws = await import('../providers/aws/index.js');
  };
  // Applied fleets count too: a fleet whose file was removed is still observed and torn down.
  await ensureProviders([...fleets, ...(await store.listFleets()).map((f) => f.spec)]);
  let local: Provider | undefined;
  // Providers get a fleet's connector settings by group, as connectInfo only receives a GroupRef.
  let byName = new Map(fleets.map((f) => [f.name, f]));
  const connectorFor = (ref: GroupRef) => byName.get(ref.fleet)?.connector;

  const providers = new ProviderRegistry((spec) => {
    if (load.providers) return load.providers(spec);
    switch (spec.type) {
      case 'local':
        local ??= createLocalProvider({ stateDir, time });
        return local;
      case 'aws':
        if (!aws) throw new FleetError(ErrorCode.INTERNAL, 'AWS provider requested but not loaded');
        return aws.createAwsProvider({
          region: spec.region,
          profile: spec.profile,
          endpoint: spec.endpoint,
          time,
          connectorFor,
        });
      case 'static':
        return createStaticProvider({ hosts: spec.hosts, connectorFor, time });
    }
  });
  return {
    store,
    providers,
    time,
    stateDir,
    ensureProviders,
    track: (current) => {
      byName = new Map(current.map((f) => [f.name, f]));
    },
    close: () => store.close(),
  };
}
