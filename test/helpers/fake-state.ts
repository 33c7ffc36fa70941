/**
 * In-memory builders for planner tests (in the spirit of changesets' FakeFullState): a complete
 * default fleet spec, and a fluent builder of desired fleets + observed state.
 *
 *   const input = new FakeState()
 *     .fleet({ name: 'a', capacity_per_instance: 2 })        // in fleets/*.yaml and applied
 *     .group('a')                                            // provider group exists
 *     .instance('a', 'i-1', { launched_at: '...' })          // provider shows it running
 *     .ledger('a', 'i-1', { use_count: 3, acquired: 1 })     // runfleet's ledger row
 *     .demand('a', { pending: 2 })
 *     .input('2026-03-01T12:00:00Z');
 */
import type {
  ConnectorSpec,
  DesiredFleet,
  DockerSpec,
  Fleet,
  FleetSource,
  GitlabSpec,
  PolicySpec,
  ScaleThrottleSpec,
} from '../../src/model/fleet.js';
import { DEFAULT_CHECK_INTERVAL } from '../../src/model/fleet.js';
import { groupRefFor } from '../../src/model/group.js';
import type {
  AppliedFleet,
  Demand,
  Json,
  LedgerInstance,
  ObservedGroup,
  ObservedInstance,
  ObservedState,
} from '../../src/model/observed.js';
import type { Diagnostic } from '../../src/model/plan.js';
import type { PlanInput } from '../../src/plan/planner.js';
import type { GroupDiff } from '../../src/model/settings-diff.js';
import { diffAwsGroup } from '../../src/providers/aws/group-settings.js';

/** A policy entry with every field set; in force at all times, no idle capacity. */
export function policySpec(overrides: Partial<PolicySpec> = {}): PolicySpec {
  return {
    periods: ['* * * * *'],
    timezone: 'UTC',
    idle_count: 0,
    idle_time: '20m',
    scale_factor: 0,
    scale_factor_limit: 0,
    preemptive_mode: (overrides.idle_count ?? 0) > 0,
    ...overrides,
  };
}

export interface FleetOverrides extends Partial<
  Omit<Fleet, 'docker' | 'connector' | 'policy' | 'gitlab' | 'scale_throttle'>
> {
  /** null leaves the optional block out (e.g. for the `instance` executor). */
  docker?: Partial<DockerSpec> | null;
  connector?: Partial<ConnectorSpec>;
  /** Each entry is completed with `policySpec`. */
  policy?: Partial<PolicySpec>[];
  gitlab?: Partial<GitlabSpec> | null;
  scale_throttle?: Partial<ScaleThrottleSpec>;
}

/**
 * A complete, valid normalised fleet (local provider, docker executor, one always-on policy entry)
 * with `overrides` merged in: nested objects are merged field by field, `provider` is replaced
 * whole (it is a union), `policy` entries are each completed with `policySpec`; `docker: null` and
 * `gitlab: null` leave those optional blocks out.
 */
export function fleetSpec(overrides: FleetOverrides = {}): Fleet {
  const { docker, connector, policy, gitlab, scale_throttle, ...top } = overrides;
  const spec: Fleet = {
    name: 'linux-small',
    provider: { type: 'local' },
    executor: 'docker',
    capacity_per_instance: 1,
    max_instances: 10,
    max_use_count: 0,
    apply: 'auto',
    delete_instances_on_shutdown: true,
    ...top,
    connector: {
      username: 'runner',
      protocol: 'ssh',
      port: 22,
      use_static_credentials: false,
      use_external_addr: false,
      keepalive: '30s',
      timeout: '10m',
      ...connector,
    },
    policy: (policy ?? [{}]).map(policySpec),
    scale_throttle: { limit: 100, burst: top.max_instances ?? 10, ...scale_throttle },
  };
  if (docker !== null) {
    spec.docker = {
      image: 'alpine:3.20',
      pull_policy: ['if-not-present'],
      privileged: false,
      volumes: [],
      host: 'unix:///var/run/docker.sock',
      wait_for_services_timeout: 30,
      ...docker,
    };
  }
  if (gitlab !== null) {
    spec.gitlab = {
      url: 'https://gitlab.example.com',
      token: { env: 'RUNFLEET_GITLAB_TOKEN' },
      request_concurrency: 1,
      check_interval: DEFAULT_CHECK_INTERVAL,
      ...gitlab,
    };
  }
  return spec;
}

export const T0 = '2026-03-01T12:00:00.000Z';

/** An ISO time `minutes` before `at`. */
export function minutesBefore(at: string, minutes: number): string {
  return new Date(Date.parse(at) - minutes * 60_000).toISOString();
}

export class FakeState {
  readonly desired: DesiredFleet[] = [];
  readonly applied: AppliedFleet[] = [];
  readonly groups = new Map<string, ObservedGroup>();
  readonly ledgerRows: LedgerInstance[] = [];
  readonly demands: Record<string, Demand> = {};
  private readonly specs = new Map<string, Fleet>();

  /** A fleet that is both in the fleet files and applied with the same spec (the steady state). */
  fleet(overrides: FleetOverrides = {}): this {
    return this.desiredFleet(overrides).appliedFleet(overrides);
  }

  /** A fleet only in the fleet files (about to be created), completed by `fleetSpec`. */
  desiredFleet(overrides: FleetOverrides = {}, source?: FleetSource): this {
    const full = fleetSpec(overrides);
    this.desired.push({ spec: full, source: source ?? { file: `fleets/${full.name}.yaml`, line: 1 } });
    this.specs.set(full.name, full);
    return this;
  }

  /** A fleet only in the store (its file was removed), or the old spec of a changed fleet. */
  appliedFleet(overrides: FleetOverrides = {}): this {
    const full = fleetSpec(overrides);
    this.applied.push({ name: full.name, spec: full, hash: `hash-${full.name}`, applied_at: T0 });
    if (!this.specs.has(full.name)) this.specs.set(full.name, full);
    return this;
  }

  /** The provider group of `fleet` (ref from the fleet's desired, else applied, spec). */
  group(
    fleet: string,
    opts: {
      exists?: boolean;
      settings?: Record<string, Json>;
      diagnostics?: Diagnostic[];
      requested?: number;
      fixedCapacity?: boolean;
    } = {},
  ): this {
    const g = this.groupOf(fleet);
    if (opts.exists !== undefined) g.exists = opts.exists;
    if (opts.requested !== undefined) g.requested = opts.requested;
    if (opts.fixedCapacity !== undefined) g.fixedCapacity = opts.fixedCapacity;
    if (opts.settings) g.settings = opts.settings;
    if (opts.diagnostics) g.diagnostics.push(...opts.diagnostics);
    return this;
  }

  /** An instance the provider shows in the fleet's group (created if needed); `running` by default. */
  instance(fleet: string, id: string, opts: Partial<ObservedInstance> = {}): this {
    this.groupOf(fleet).instances.push({ id, state: 'running', launched_at: minutesBefore(T0, 60), ...opts });
    return this;
  }

  /** runfleet's ledger row for an instance; `ready`, unused, idle since its creation by default. */
  ledger(fleet: string, id: string, opts: Partial<LedgerInstance> = {}): this {
    this.ledgerRows.push({
      fleet,
      id,
      provider: this.specs.get(fleet)?.provider.type ?? 'local',
      state: 'ready',
      created_at: minutesBefore(T0, 60),
      ready_at: minutesBefore(T0, 59),
      use_count: 0,
      health_failures: 0,
      acquired: 0,
      ...opts,
    });
    return this;
  }

  /** Both the provider's running instance and a ledger row. */
  ready(fleet: string, id: string, ledger: Partial<LedgerInstance> = {}): this {
    return this.instance(fleet, id).ledger(fleet, id, ledger);
  }

  demand(fleet: string, demand: Partial<Demand>): this {
    this.demands[fleet] = { acquired: 0, reserved: 0, pending: 0, ...demand };
    return this;
  }

  observed(): ObservedState {
    return {
      fleets: this.applied,
      groups: [...this.groups.values()],
      ledger: this.ledgerRows,
      demand: this.demands,
    };
  }

  /** What observe would hand the planner, group diffs by the AWS provider's `diffGroup`. */
  input(now: string | Date = T0): PlanInput {
    const observed = this.observed();
    const groupChanges: Record<string, GroupDiff> = {};
    for (const { spec } of this.desired) {
      if (spec.provider.type !== 'aws') continue;
      const ref = groupRefFor(spec);
      groupChanges[spec.name] = diffAwsGroup(
        spec,
        observed.groups.find((g) => g.ref.name === ref.name && g.ref.provider === ref.provider),
      );
    }
    return {
      desired: this.desired,
      observed,
      now: new Date(now),
      basis: { observed: 'observed-hash', fleets: 'fleets-hash' },
      groupChanges,
    };
  }

  private groupOf(fleet: string): ObservedGroup {
    let g = this.groups.get(fleet);
    if (!g) {
      const spec = this.specs.get(fleet) ?? fleetSpec({ name: fleet });
      g = { ref: groupRefFor(spec), exists: true, settings: {}, instances: [], diagnostics: [] };
      this.groups.set(fleet, g);
    }
    return g;
  }
}
