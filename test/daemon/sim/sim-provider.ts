/**
 * A simulated provider: instances boot after a delay, increases may fail at a seeded rate, spot
 * instances can be interrupted and reclaimed. It records every mutating call, and every removal of
 * an instance the slot scheduler says is busy (which must never happen).
 */
import { FleetError } from '../../../src/errors.js';
import type { Fleet } from '../../../src/model/fleet.js';
import type { GroupRef, ObservedGroup, ObservedInstance } from '../../../src/model/observed.js';
import type { ConnectInfo, Provider } from '../../../src/providers/provider.js';
import type { Clock } from '../../../src/util/time.js';

export interface SimInstance {
  id: string;
  launchedAt: number;
  interrupting: boolean;
}

export interface SimOptions {
  clock: Clock;
  bootDelayMs?: number;
  createFailureRate?: number;
  seed?: number;
}

export class SimProvider implements Provider {
  readonly type = 'local' as const;
  readonly groups = new Map<string, Map<string, SimInstance>>();
  readonly calls: { op: string; group: string; detail: string; at: number }[] = [];
  readonly violations: string[] = [];
  created = 0;
  removed = 0;
  /** The next increase creates its instances, then never returns (a crash mid-call). */
  hangNextIncrease = false;
  isBusy: (fleet: string, id: string) => boolean = () => false;
  /** Heartbeat calls per instance id, with the time of each. */
  readonly heartbeats = new Map<string, number[]>();
  /** Most heartbeats in flight at once. */
  maxHeartbeatsInFlight = 0;
  /** Instance id → how many of its next heartbeats fail (Infinity: it stopped answering). */
  private readonly failingHeartbeats = new Map<string, number>();
  /** Instance id → how its heartbeats misbehave: the provider errs, or no answer ever comes. */
  readonly brokenHeartbeats = new Map<string, 'throw' | 'hang'>();
  private heartbeatsInFlight = 0;
  private nextId = 1;
  private rng: () => number;

  constructor(private readonly opts: SimOptions) {
    let s = opts.seed ?? 1;
    this.rng = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  }

  live(group: string): SimInstance[] {
    return [...(this.groups.get(group)?.values() ?? [])];
  }

  interrupt(group: string, id: string): void {
    const inst = this.groups.get(group)?.get(id);
    if (inst) inst.interrupting = true;
  }

  /** The cloud takes the instance away (spot reclaim). */
  reclaim(group: string, id: string): void {
    this.groups.get(group)?.delete(id);
  }

  /** The instance's next `n` heartbeats answer false, though the provider still shows it running. */
  failHeartbeats(id: string, n = Infinity): void {
    this.failingHeartbeats.set(id, n);
  }

  async observe(refs: GroupRef[]): Promise<ObservedGroup[]> {
    const now = this.opts.clock.now().getTime();
    return refs.map((ref) => {
      const g = this.groups.get(ref.name);
      const instances: ObservedInstance[] = [...(g?.values() ?? [])].map((i) => ({
        id: i.id,
        state: now - i.launchedAt >= (this.opts.bootDelayMs ?? 0) ? 'running' : 'creating',
        launched_at: new Date(i.launchedAt).toISOString(),
        lifecycle: 'spot',
        ...(i.interrupting ? { interrupting: true } : {}),
      }));
      return { ref, exists: g !== undefined, settings: {}, instances, diagnostics: [] };
    });
  }

  async applyGroup(fleet: Fleet): Promise<void> {
    if (!this.groups.has(fleet.name)) this.groups.set(fleet.name, new Map());
    this.calls.push({ op: 'applyGroup', group: fleet.name, detail: '', at: this.opts.clock.now().getTime() });
  }

  async deleteGroup(ref: GroupRef): Promise<void> {
    const g = this.groups.get(ref.name);
    if (g && g.size > 0) throw new FleetError('PROVIDER', `group ${ref.name} still has instances`);
    this.groups.delete(ref.name);
    this.calls.push({ op: 'deleteGroup', group: ref.name, detail: '', at: this.opts.clock.now().getTime() });
  }

  async increase(ref: GroupRef, n: number): Promise<number> {
    const g = this.groups.get(ref.name);
    if (!g) throw new FleetError('PROVIDER', `no group ${ref.name}`);
    this.calls.push({
      op: 'increase',
      group: ref.name,
      detail: String(n),
      at: this.opts.clock.now().getTime(),
    });
    if (this.rng() < (this.opts.createFailureRate ?? 0)) {
      throw new FleetError('PROVIDER', 'simulated capacity error', { retryable: true });
    }
    for (let k = 0; k < n; k++) {
      const id = `sim-${String(this.nextId++).padStart(3, '0')}`;
      g.set(id, { id, launchedAt: this.opts.clock.now().getTime(), interrupting: false });
      this.created++;
    }
    if (this.hangNextIncrease) {
      this.hangNextIncrease = false;
      return new Promise<number>(() => undefined);
    }
    return n;
  }

  async decrease(ref: GroupRef, ids: string[]): Promise<string[]> {
    this.calls.push({
      op: 'decrease',
      group: ref.name,
      detail: ids.join(','),
      at: this.opts.clock.now().getTime(),
    });
    const g = this.groups.get(ref.name);
    for (const id of ids) {
      if (this.isBusy(ref.fleet, id)) this.violations.push(`removed busy instance ${id}`);
      if (g?.delete(id)) this.removed++;
    }
    return ids;
  }

  async connectInfo(_ref: GroupRef, id: string): Promise<ConnectInfo> {
    return { id, address: '192.0.2.1', port: 22, username: 'sim', protocol: 'ssh' };
  }

  async heartbeat(ref: GroupRef, id: string): Promise<boolean> {
    const i = this.groups.get(ref.name)?.get(id);
    const up =
      i !== undefined && this.opts.clock.now().getTime() - i.launchedAt >= (this.opts.bootDelayMs ?? 0);
    if (!up) return false; // readiness heartbeats of booting instances are not recorded
    this.heartbeats.set(id, [...(this.heartbeats.get(id) ?? []), this.opts.clock.now().getTime()]);
    this.maxHeartbeatsInFlight = Math.max(this.maxHeartbeatsInFlight, ++this.heartbeatsInFlight);
    // Answers a couple of turns later, like a network call, so concurrent calls overlap.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    this.heartbeatsInFlight--;
    const broken = this.brokenHeartbeats.get(id);
    if (broken === 'throw') throw new FleetError('PROVIDER', 'simulated API outage', { retryable: true });
    if (broken === 'hang') return new Promise<boolean>(() => undefined);
    const failing = this.failingHeartbeats.get(id) ?? 0;
    if (failing <= 0) return true;
    this.failingHeartbeats.set(id, failing - 1);
    return false;
  }
}
