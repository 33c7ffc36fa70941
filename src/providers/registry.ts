/**
 * One provider instance per distinct provider configuration, so that every fleet on the same AWS
 * region/profile/endpoint shares one client and `observe` can batch across their groups.
 */
import type { Fleet } from '../model/fleet.js';
import { groupRefFor } from '../model/group.js';
import type { GroupRef } from '../model/observed.js';
import type { Provider } from './provider.js';

export type ProviderBuilder = (spec: Fleet['provider']) => Provider;

export class ProviderRegistry {
  private readonly byKey = new Map<string, Provider>();

  constructor(private readonly build: ProviderBuilder) {}

  /** The provider serving this fleet; built on first use. */
  forFleet(fleet: Pick<Fleet, 'provider' | 'name'>): Provider {
    const key = providerKey(fleet.provider);
    let provider = this.byKey.get(key);
    if (!provider) {
      provider = this.build(fleet.provider);
      this.byKey.set(key, provider);
    }
    return provider;
  }

  /** Groups the fleets by the provider serving them, for batched observe calls. */
  partition(fleets: Pick<Fleet, 'provider' | 'name'>[]): { provider: Provider; refs: GroupRef[] }[] {
    const out = new Map<Provider, GroupRef[]>();
    for (const fleet of fleets) {
      const provider = this.forFleet(fleet);
      const refs = out.get(provider) ?? [];
      refs.push(groupRefFor(fleet));
      out.set(provider, refs);
    }
    return [...out].map(([provider, refs]) => ({ provider, refs }));
  }
}

/** Fleets whose provider settings produce the same key share a provider instance. */
export function providerKey(spec: Fleet['provider']): string {
  switch (spec.type) {
    case 'aws':
      return ['aws', spec.region, spec.profile ?? '', spec.endpoint ?? ''].join('|');
    case 'local':
      return 'local';
    case 'static':
      return ['static', ...spec.hosts].join('|');
  }
}
