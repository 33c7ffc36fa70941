/** `runfleet managers`: the managers sharing a PostgreSQL state store, their heartbeats and fleets. */
import { FleetError } from '../../errors.js';
import { LEASE_TTL_MS } from '../../model/leases.js';
import { PostgresLeases } from '../../store/pg-leases.js';
import { PostgresStateStore } from '../../store/postgres-store.js';
import { table, type Io } from '../io.js';
import { openContext, type GlobalOptions } from '../root.js';

export async function managers(opts: GlobalOptions, json: boolean, io: Io): Promise<number> {
  const ctx = await openContext(opts, []);
  try {
    const store = ctx.store;
    if (!(store instanceof PostgresStateStore)) {
      throw new FleetError(
        'USAGE',
        `runfleet managers needs the state in PostgreSQL; ${store.location} is a file`,
        {
          hint: 'pass --state postgres://user@host:5432/db (or set RUNFLEET_STATE)',
        },
      );
    }
    const api = new PostgresLeases(store.pool, store.location);
    const [members, leases] = await Promise.all([api.members(LEASE_TTL_MS), api.leases()]);
    const fleetsOf = (id: string) =>
      leases
        .filter((l) => l.owner === id && l.remainingMs > 0)
        .map((l) => ({ fleet: l.fleet, term: l.term }));
    const unowned = leases.filter((l) => l.owner === null || l.remainingMs <= 0).map((l) => l.fleet);
    if (json) {
      io.out(
        JSON.stringify(
          { managers: members.map((m) => ({ ...m, fleets: fleetsOf(m.id) })), unowned_fleets: unowned },
          null,
          2,
        ),
      );
      return 0;
    }
    if (members.length === 0) {
      io.out(`No manager is registered in ${store.location}. Start one with: runfleet watch --state ...`);
    } else {
      io.out(
        table(
          ['MANAGER', 'HOST', 'PID', 'STARTED', 'HEARTBEAT', 'STATE', 'FLEETS'],
          members.map((m) => {
            const owned = fleetsOf(m.id);
            return [
              m.id,
              m.host,
              String(m.pid),
              m.started_at,
              `${(m.heartbeat_age_ms / 1000).toFixed(1)}s ago`,
              !m.alive ? 'silent' : m.stopping ? 'handing over' : 'live',
              owned.length === 0 ? '-' : owned.map((o) => `${o.fleet} (term ${o.term})`).join(', '),
            ];
          }),
        ),
      );
    }
    if (unowned.length > 0) io.out(`\nFleets without an owner now: ${unowned.join(', ')}`);
    return 0;
  } finally {
    await ctx.close();
  }
}
