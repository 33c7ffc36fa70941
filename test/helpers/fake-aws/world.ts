/**
 * The in-memory Region behind the fake endpoint: Auto Scaling groups, their EC2 instances, spot
 * requests, scaling policies and pushed Instance Connect keys. Time moves lazily: every request (and
 * every read by a test) first calls `advance()`, which launches instances a group's desired
 * capacity asks for, turns Pending into InService after `pendingMs` and Terminating into
 * Terminated after `terminateMs`. No timers, so nothing outlives a test.
 */

export type LifecycleState = 'Pending' | 'InService' | 'Terminating' | 'Terminated';
export type Ec2State = 'pending' | 'running' | 'shutting-down' | 'terminated';

export interface LaunchTemplateRef {
  id: string;
  name: string;
  version: string;
}

export interface InstancesDistribution {
  onDemandBase: number;
  onDemandPercentage: number;
  spotAllocationStrategy: string;
}

export interface FakeGroup {
  name: string;
  arn: string;
  minSize: number;
  maxSize: number;
  desired: number;
  /** When `desired` last rose: new instances appear `launchDelayMs` after it. */
  desiredRaisedAt: number;
  launchTemplate?: LaunchTemplateRef;
  mixed?: { launchTemplate: LaunchTemplateRef; overrides: string[]; distribution: InstancesDistribution };
  vpcZoneIdentifier: string;
  newInstancesProtectedFromScaleIn: boolean;
  capacityRebalance: boolean;
  /** Process name → suspension reason. */
  suspended: Map<string, string>;
  /** Key → value and PropagateAtLaunch, in insertion order. */
  tags: Map<string, { value: string; propagate: boolean }>;
  createdTime: Date;
  /** Member instance ids, oldest first. */
  members: string[];
  warmPool: boolean;
  status?: string;
}

export interface FakeInstance {
  id: string;
  group?: string;
  lifecycle: LifecycleState;
  ec2State: Ec2State;
  instanceType: string;
  availabilityZone: string;
  subnetId: string;
  privateIp: string;
  publicIp?: string;
  launchTime: Date;
  tags: Map<string, string>;
  protectedFromScaleIn: boolean;
  healthy: boolean;
  launchTemplate?: LaunchTemplateRef;
  spot?: { requestId: string; statusCode: string };
  /** When the current transition (Pending → InService, Terminating → Terminated) completes. */
  transitionAt: number;
}

export interface FakePolicy {
  group: string;
  name: string;
  type: string;
}

export interface WorldOptions {
  /** Pending → InService (EC2 pending → running). @default 200 */
  pendingMs?: number;
  /** Terminating → Terminated (leaves the group; EC2 shutting-down → terminated). @default 0 */
  terminateMs?: number;
  /** Delay between a raised desired capacity and the group listing the new instances. @default 0 */
  launchDelayMs?: number;
  /** Give instances public IPs (198.51.100.x). @default false */
  publicIps?: boolean;
  /** @default Date.now */
  now?: () => number;
}

export const ACCOUNT_ID = '123456789012';
const AZS = ['a', 'b', 'c'];

export class World {
  readonly groups = new Map<string, FakeGroup>();
  readonly instances = new Map<string, FakeInstance>();
  readonly policies: FakePolicy[] = [];
  /** Every SendSSHPublicKey accepted, oldest first. */
  readonly sshKeys: { instanceId: string; osUser: string; publicKey: string; availabilityZone?: string }[] =
    [];
  readonly pendingMs: number;
  readonly terminateMs: number;
  readonly launchDelayMs: number;
  private readonly publicIps: boolean;
  readonly now: () => number;
  private counter = 0;
  private readonly templates = new Map<string, LaunchTemplateRef>();

  constructor(
    readonly region: string,
    opts: WorldOptions = {},
  ) {
    this.pendingMs = opts.pendingMs ?? 200;
    this.terminateMs = opts.terminateMs ?? 0;
    this.launchDelayMs = opts.launchDelayMs ?? 0;
    this.publicIps = opts.publicIps ?? false;
    this.now = opts.now ?? Date.now;
  }

  nextId(): number {
    return ++this.counter;
  }

  /** AWS reports both the id and the name of a template, whichever the request used. */
  resolveTemplate(ref: { id?: string; name?: string; version?: string }): LaunchTemplateRef {
    const key = ref.id ?? ref.name ?? '';
    let known = this.templates.get(key);
    if (!known) {
      const n = this.nextId();
      known = {
        id: ref.id ?? `lt-${n.toString(16).padStart(17, '0')}`,
        name: ref.name ?? `template-${n}`,
        version: '',
      };
      this.templates.set(known.id, known);
      this.templates.set(known.name, known);
    }
    return { id: known.id, name: known.name, version: ref.version ?? '$Default' };
  }

  subnetsOf(g: FakeGroup): string[] {
    return g.vpcZoneIdentifier
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }

  availabilityZoneOf(subnet: string): string {
    let h = 0;
    for (const c of subnet) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    return `${this.region}${AZS[h % AZS.length]}`;
  }

  /** Members that count toward the desired capacity (not leaving). */
  liveMembers(g: FakeGroup): FakeInstance[] {
    return g.members
      .map((id) => this.instances.get(id)!)
      .filter((i) => i.lifecycle === 'Pending' || i.lifecycle === 'InService');
  }

  /** Brings the Region up to `now`: finishes transitions, then launches or scales in. */
  advance(): void {
    const now = this.now();
    for (const inst of this.instances.values()) {
      if (inst.transitionAt > now) continue;
      if (inst.lifecycle === 'Pending') {
        inst.lifecycle = 'InService';
        inst.ec2State = 'running';
      } else if (inst.lifecycle === 'Terminating') {
        inst.lifecycle = 'Terminated';
        inst.ec2State = 'terminated';
      }
    }
    for (const g of this.groups.values()) {
      g.members = g.members.filter((id) => {
        const inst = this.instances.get(id)!;
        if (inst.lifecycle !== 'Terminated') return true;
        delete inst.group;
        return false;
      });
      const live = this.liveMembers(g);
      if (live.length < g.desired && now >= g.desiredRaisedAt + this.launchDelayMs) {
        for (let k = live.length; k < g.desired; k++) this.launch(g, k);
      } else if (live.length > g.desired) {
        // Scale-in never picks protected instances, which is why runfleet protects them.
        const victims = live.filter((i) => !i.protectedFromScaleIn).reverse();
        for (const inst of victims.slice(0, live.length - g.desired)) this.beginTermination(inst);
      }
    }
  }

  /** Starts terminating one instance (the group drops it once Terminated). */
  beginTermination(inst: FakeInstance): void {
    if (inst.lifecycle === 'Terminating' || inst.lifecycle === 'Terminated') return;
    inst.lifecycle = 'Terminating';
    inst.ec2State = 'shutting-down';
    inst.transitionAt = this.now() + this.terminateMs;
    if (this.terminateMs === 0) this.advanceInstance(inst);
  }

  private advanceInstance(inst: FakeInstance): void {
    if (inst.lifecycle === 'Terminating') {
      inst.lifecycle = 'Terminated';
      inst.ec2State = 'terminated';
      const g = inst.group ? this.groups.get(inst.group) : undefined;
      if (g) g.members = g.members.filter((id) => id !== inst.id);
      delete inst.group;
    }
  }

  /** Launches the group's `index`-th live instance (0-based), as the group's launch would. */
  private launch(g: FakeGroup, index: number): FakeInstance {
    const template = g.mixed?.launchTemplate ?? g.launchTemplate;
    const subnets = this.subnetsOf(g);
    const subnet = subnets[index % Math.max(1, subnets.length)] ?? 'subnet-default';
    const dist = g.mixed?.distribution;
    const spot =
      dist !== undefined &&
      index >= dist.onDemandBase &&
      (index - dist.onDemandBase) % 100 >= dist.onDemandPercentage;
    const inst = this.addInstance({
      group: g.name,
      instanceType: g.mixed?.overrides[0] ?? 't3.medium',
      subnetId: subnet,
      protectedFromScaleIn: g.newInstancesProtectedFromScaleIn,
      launchTemplate: template,
      spot,
      tags: [
        ...[...g.tags].filter(([, t]) => t.propagate).map(([k, t]): [string, string] => [k, t.value]),
        ['aws:autoscaling:groupName', g.name],
      ],
    });
    g.members.push(inst.id);
    return inst;
  }

  /** Adds an EC2 instance (in a group, or standalone for orphan scenarios). */
  addInstance(spec: {
    group?: string;
    instanceType?: string;
    subnetId?: string;
    protectedFromScaleIn?: boolean;
    launchTemplate?: LaunchTemplateRef;
    spot?: boolean;
    tags?: [string, string][];
    state?: 'pending' | 'running';
  }): FakeInstance {
    const n = this.nextId();
    const now = this.now();
    const subnetId = spec.subnetId ?? 'subnet-default';
    const running = spec.state === 'running' || this.pendingMs === 0;
    const inst: FakeInstance = {
      id: `i-${n.toString(16).padStart(17, '0')}`,
      lifecycle: running ? 'InService' : 'Pending',
      ec2State: running ? 'running' : 'pending',
      instanceType: spec.instanceType ?? 't3.medium',
      availabilityZone: this.availabilityZoneOf(subnetId),
      subnetId,
      privateIp: `10.0.${(n >> 8) & 255}.${n & 255}`,
      launchTime: new Date(now),
      tags: new Map(spec.tags ?? []),
      protectedFromScaleIn: spec.protectedFromScaleIn ?? false,
      healthy: true,
      transitionAt: now + this.pendingMs,
    };
    if (spec.group !== undefined) inst.group = spec.group;
    if (this.publicIps) inst.publicIp = `198.51.100.${n & 255}`;
    if (spec.launchTemplate) inst.launchTemplate = spec.launchTemplate;
    if (spec.spot)
      inst.spot = { requestId: `sir-${n.toString(36).padStart(8, '0')}`, statusCode: 'fulfilled' };
    this.instances.set(inst.id, inst);
    return inst;
  }
}
