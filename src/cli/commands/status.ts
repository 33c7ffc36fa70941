import { readFile } from 'node:fs/promises';
import { statusFromStore, type FleetStatus, type StatusReport } from '../../daemon/status.js';
import { PostgresLeases } from '../../store/pg-leases.js';
import { PostgresStateStore } from '../../store/postgres-store.js';
import { openContext, type Context, type GlobalOptions } from '../root.js';
import { styler, table, type Io } from '../io.js';
import { watchFilePath, type WatchFile } from '../root.js';

export interface StatusOptions {
  json: boolean;
  /** `host:port` of a daemon; default: the one recorded next to the state file. */
  daemon?: string;
}

/**
 * `runfleet status`: asks the running daemon (live slots, readiness, the policy in force), or reads
 * the store when no daemon answers.
 */
export async function status(opts: GlobalOptions, s: StatusOptions, io: Io): Promise<number> {
  const address = s.daemon ?? (await recordedDaemon(opts.state));
  let report: StatusReport | undefined;
  if (address) report = await fetchStatus(address);
  const ctx = await openContext(opts, []);
  try {
    report ??= await statusFromStore(ctx.store, ctx.time);
    if (ctx.store instanceof PostgresStateStore) await addOwners(report, ctx);
  } finally {
    await ctx.close();
  }
  io.out(s.json ? JSON.stringify(report, null, 2) : renderStatus(report, io.color));
  return 0;
}

/**
 * Several managers on PostgreSQL: a daemon reports only the fleets it owns, so the others come
 * from the store, and every fleet is shown with its owner and lease term.
 */
async function addOwners(report: StatusReport, ctx: Context): Promise<void> {
  const store = ctx.store as PostgresStateStore;
  const leases = await new PostgresLeases(store.pool, store.location).leases();
  const fromStore = await statusFromStore(ctx.store, ctx.time);
  const shown = new Set(report.fleets.map((f) => f.name));
  for (const f of fromStore.fleets) if (!shown.has(f.name)) report.fleets.push(f);
  report.fleets.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const byFleet = new Map(leases.map((l) => [l.fleet, l]));
  for (const f of report.fleets) {
    const l = byFleet.get(f.name);
    f.owner = l && l.owner !== null && l.remainingMs > 0 ? l.owner : null;
    if (l) f.term = l.term;
  }
}

async function recordedDaemon(statePath: string): Promise<string | undefined> {
  try {
    const info = JSON.parse(await readFile(watchFilePath(statePath), 'utf8')) as WatchFile;
    return typeof info.listen === 'string' ? info.listen : undefined;
  } catch {
    return undefined;
  }
}

async function fetchStatus(address: string): Promise<StatusReport | undefined> {
  try {
    const res = await fetch(`http://${address}/v1/status`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) return undefined;
    return (await res.json()) as StatusReport;
  } catch {
    return undefined; // no daemon there (any more): fall back to the store
  }
}

export function renderStatus(report: StatusReport, color: boolean): string {
  const style = styler(color);
  const lines: string[] = [];
  if (report.daemon) {
    const d = report.daemon;
    lines.push(
      style.bold(`daemon ${d.state}`) +
        ` (pid ${d.pid}, since ${d.started_at}${d.last_pass_at ? `, last pass ${d.last_pass_at}` : ''})`,
    );
  } else {
    lines.push(style.yellow('no daemon running: showing the state store (slots unknown)'));
  }
  for (const e of report.config_errors) lines.push(style.red(`config error: ${e}`));
  for (const o of report.orphans ?? []) lines.push(style.yellow(`orphan: ${o}`));
  if (report.fleets.length === 0) lines.push('\nno fleets');
  for (const f of report.fleets) lines.push('', ...renderFleet(f, style));
  return lines.join('\n');
}

function renderFleet(f: FleetStatus, style: ReturnType<typeof styler>): string[] {
  const out: string[] = [];
  const where = f.source && f.source.line > 0 ? ` ${f.source.file}:${f.source.line}` : '';
  out.push(
    style.bold(`fleet ${f.name}`) +
      ` (${f.provider} group ${f.group}, apply: ${f.mode}, ${f.status})${where}`,
  );
  if (f.owner !== undefined) {
    out.push(
      f.owner === null
        ? style.yellow(`  owner: none now (term ${f.term ?? 0}; the next manager takes it over)`)
        : `  owner: ${f.owner}, term ${f.term ?? 0}`,
    );
  }
  if (f.policy) {
    const p = f.policy;
    const which = p.index < 0 ? 'no period matches now' : `policy[${p.index}]`;
    out.push(
      `  policy now: ${which}: idle_count ${p.idle_count}, idle_time ${p.idle_time}, ` +
        `scale_factor ${p.scale_factor}${p.scale_factor_limit ? ` (limit ${p.scale_factor_limit})` : ''}`,
    );
  }
  if (f.capacity)
    out.push(`  capacity: ${f.capacity.current} → ${f.capacity.target} instances (${f.capacity.reason})`);
  if (f.slots) {
    const c = f.slots;
    out.push(
      `  slots: idle ${c.idle}, reserved ${c.reserved}, acquired ${c.acquired}, pending ${c.pending}, ` +
        `unavailable ${c.unavailable}, unhealthy ${c.unhealthy}`,
    );
  }
  if (f.runner?.state === 'running') out.push(`  gitlab runner: requesting jobs, ${f.runner.jobs} running`);
  if (f.runner?.state === 'failing') {
    out.push(style.red(`  gitlab runner: not running (retrying): ${f.runner.error ?? 'unknown error'}`));
  }
  if (f.pending_changes > 0) {
    out.push(
      style.yellow(`  ${f.pending_changes} change(s) in the file await a reviewed apply (apply: manual)`),
    );
  }
  if (f.backoff_until)
    out.push(style.yellow(`  creation paused until ${f.backoff_until} (readiness failures)`));
  for (const e of f.config_errors) out.push(style.red(`  ${e}`));
  if (f.provider_error) {
    const p = f.provider_error;
    out.push(style.red(`  last provider error at ${p.at} (${p.during}, ${p.code}): ${p.message}`));
  }
  for (const o of f.orphans ?? []) out.push(style.yellow(`  orphan: ${o}`));
  if (f.instances.length === 0) {
    out.push('  no instances');
  } else {
    const rows = f.instances.map((i) => [
      i.id,
      i.state + (i.drain_reason ? ` (${i.drain_reason})` : ''),
      String(i.use_count),
      String(i.acquired),
      i.ready_at ?? '-',
      i.last_used_at ?? '-',
    ]);
    out.push(
      ...table(['INSTANCE', 'STATE', 'USES', 'JOBS', 'READY AT', 'LAST USED'], rows)
        .split('\n')
        .map((l) => `  ${l}`),
    );
    for (const i of f.instances) {
      const o = i.out_of_service;
      if (!o) continue;
      const last = o.last_try_at ? `; last tried ${o.last_try_at}: ${o.last_error ?? 'failed'}` : '';
      out.push(style.yellow(`  ${i.id} out of service: ${o.reason}${last}; retried at the heartbeat rhythm`));
    }
  }
  return out;
}
