import { openContext, type GlobalOptions } from '../root.js';
import { table, type Io } from '../io.js';

/** `runfleet state list`: the applied fleets and the instance ledger. */
export async function stateList(opts: GlobalOptions, json: boolean, io: Io): Promise<number> {
  const ctx = await openContext(opts, []);
  try {
    const [fleets, instances, lock] = await Promise.all([
      ctx.store.listFleets(),
      ctx.store.listInstances(),
      ctx.store.currentLock(),
    ]);
    if (json) {
      io.out(
        JSON.stringify(
          { fleets: fleets.map(({ spec: _s, ...f }) => f), instances, lock: lock ?? null },
          null,
          2,
        ),
      );
      return 0;
    }
    if (fleets.length === 0 && instances.length === 0) {
      io.out(`The state at ${ctx.store.location} holds no fleets. Run runfleet apply to create some.`);
    } else {
      io.out(
        table(
          ['FLEET', 'PROVIDER', 'APPLIED', 'INSTANCES'],
          fleets.map((f) => [
            f.name,
            f.spec.provider.type,
            f.applied_at,
            String(instances.filter((i) => i.fleet === f.name).length),
          ]),
        ),
      );
      io.out('');
      io.out(
        table(
          ['FLEET', 'INSTANCE', 'STATE', 'CREATED', 'USES', 'LAST USED', 'HEALTH FAILURES'],
          instances.map((i) => [
            i.fleet,
            i.id,
            i.state + (i.drain_reason ? ` (${i.drain_reason})` : ''),
            i.created_at,
            String(i.use_count),
            i.last_used_at ?? '-',
            String(i.health_failures),
          ]),
        ),
      );
    }
    if (lock)
      io.out(`\nLocked by ${lock.who} (${lock.operation}) since ${lock.created_at}, lock id ${lock.id}`);
    return 0;
  } finally {
    await ctx.close();
  }
}

/** `runfleet history`: past applies, newest first. */
export async function history(opts: GlobalOptions, limit: number, json: boolean, io: Io): Promise<number> {
  const ctx = await openContext(opts, []);
  try {
    const applies = await ctx.store.listApplies(limit);
    if (json) {
      io.out(JSON.stringify(applies, null, 2));
      return 0;
    }
    if (applies.length === 0) {
      io.out('No applies recorded yet.');
      return 0;
    }
    io.out(
      table(
        ['#', 'STARTED', 'FINISHED', 'RESULT', 'ADD', 'CHANGE', 'DESTROY', 'PLAN'],
        applies.map((a) => [
          String(a.id ?? ''),
          a.started_at,
          a.finished_at,
          a.result,
          String(a.summary.add),
          String(a.summary.change),
          String(a.summary.destroy),
          a.plan_hash,
        ]),
      ),
    );
    return 0;
  } finally {
    await ctx.close();
  }
}

/** `runfleet force-unlock ID`: releases a lock left by a process that is gone. */
export async function forceUnlock(opts: GlobalOptions, id: string, io: Io): Promise<number> {
  const ctx = await openContext(opts, []);
  try {
    const current = await ctx.store.currentLock();
    if (await ctx.store.forceUnlock(id)) {
      io.out(
        `Lock ${id} released (was held by ${current?.who ?? 'unknown'} for ${current?.operation ?? 'unknown'}).`,
      );
      return 0;
    }
    io.err(
      current
        ? `No lock with id ${id}. The state is locked by ${current.who} with id ${current.id}.`
        : `No lock with id ${id}: the state is not locked.`,
    );
    return 1;
  } finally {
    await ctx.close();
  }
}
