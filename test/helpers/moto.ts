/**
 * moto (github.com/getmoto/moto), an AWS-compatible endpoint written independently of runfleet,
 * for checking the AWS provider against a second implementation of the protocols besides the
 * fake (test/helpers/fake-aws). `scripts/ci/install-moto.sh` installs the pinned version; tests
 * find it through RUNFLEET_MOTO_SERVER, else at that script's default location, else on PATH.
 *
 * One server per test file (it starts in 1–2 s): `startMoto` runs `moto_server -p 0` on
 * 127.0.0.1, reads the port it bound, waits until it answers and stops it at teardown (or when
 * the test process dies). `reset()` empties every Region between scenarios.
 */
import { accessSync, constants } from 'node:fs';
import { spawn } from 'node:child_process';
import type { Test } from 'tap';
import {
  CreateLaunchTemplateCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DescribeInstancesCommand,
  EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import {
  AutoScalingClient,
  CreateAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
  type AutoScalingGroup,
} from '@aws-sdk/client-auto-scaling';
import { onProcessEnd, waitFor } from './topology/processes.js';
import { findProgram, missingComponent } from './topology/require-or-skip.js';
import type { Teardownable } from './topology/sshd.js';

/** The version scripts/ci/install-moto.sh pins, and so its default install location. */
export const MOTO_VERSION = '5.2.5';
export const MOTO_DEFAULT_SERVER = `/opt/runfleet-moto/${MOTO_VERSION}/bin/moto_server`;

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The moto_server to run, or undefined when none is installed. */
export function motoServerPath(): string | undefined {
  const fromEnv = process.env.RUNFLEET_MOTO_SERVER;
  if (fromEnv) return executable(fromEnv) ? fromEnv : undefined;
  if (executable(MOTO_DEFAULT_SERVER)) return MOTO_DEFAULT_SERVER;
  return findProgram('moto_server');
}

/**
 * The moto_server path. Without one: a failure on CI (`CI=true`), a loud skip elsewhere, and
 * undefined: `const server = motoOrSkip(t); if (server) { ... }`.
 */
export function motoOrSkip(t: Pick<Test, 'skip' | 'fail'>): string | undefined {
  const server = motoServerPath();
  if (server) return server;
  const where = process.env.RUNFLEET_MOTO_SERVER
    ? `RUNFLEET_MOTO_SERVER=${process.env.RUNFLEET_MOTO_SERVER} is not executable`
    : `no moto_server at ${MOTO_DEFAULT_SERVER} or on PATH`;
  const message = `MISSING moto (${where}): test against moto not run. Install with: scripts/ci/install-moto.sh`;
  missingComponent(t, message);
  return undefined;
}

export interface Moto {
  /** http://127.0.0.1:PORT, the endpoint for every AWS client. */
  url: string;
  /** Forgets every resource in every Region (moto's /moto-api/reset). */
  reset(): Promise<void>;
  /** Everything moto printed (its request log), for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

/** Starts `server` (from `motoOrSkip`) on a free loopback port; stopped at teardown. */
export async function startMoto(t: Teardownable, server: string): Promise<Moto> {
  const child = spawn(server, ['-H', '127.0.0.1', '-p', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  let output = '';
  let exited = false;
  const gone = new Promise<void>((resolve) =>
    child.on('close', () => {
      exited = true;
      resolve();
    }),
  );
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const unregister = onProcessEnd(() => child.kill('SIGKILL'));
  const stop = async () => {
    unregister();
    if (!exited) child.kill('SIGTERM');
    await gone;
  };
  t.teardown(stop);

  let url: string | undefined;
  const answers = async () => {
    if (exited) return true;
    url ??= /Running on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
    if (!url) return false;
    return fetch(`${url}/moto-api/`).then(
      (r) => r.ok,
      () => false,
    );
  };
  if (!(await waitFor(answers, 30_000, 50)) || exited || !url) {
    await stop();
    throw new Error(`moto_server did not start:\n${output.slice(-2000)}`);
  }
  const base = url;
  return {
    url: base,
    reset: async () => {
      const r = await fetch(`${base}/moto-api/reset`, { method: 'POST' });
      if (!r.ok) throw new Error(`moto reset answered ${r.status}`);
    },
    log: () => output,
    stop,
  };
}

export const MOTO_REGION = 'eu-west-1';
export const MOTO_CREDENTIALS = { accessKeyId: 'AKIDMOTOTEST', secretAccessKey: 'moto-secret-not-real' };
/** The launch template runfleet's owned test fleets name. */
export const MOTO_LAUNCH_TEMPLATE = 'runner-lt';

export interface MotoNetwork {
  /** Two subnets of one VPC, in eu-west-1a and eu-west-1b, as created (not sorted). */
  subnets: [string, string];
  launchTemplateId: string;
  ec2: EC2Client;
  autoscaling: AutoScalingClient;
  /** The group as moto describes it; undefined when it does not exist. */
  group(name: string): Promise<AutoScalingGroup | undefined>;
  /** EC2's view of these instances, by id. */
  instances(ids: string[]): Promise<Map<string, Instance>>;
}

/** The ids of a group's members, in moto's order. */
export const memberIds = (g: AutoScalingGroup | undefined): string[] =>
  (g?.Instances ?? []).map((i) => i.InstanceId!);

/**
 * What an operator sets up before runfleet runs: a VPC with two subnets (moto, like AWS, refuses
 * a group whose subnets do not exist) and the launch template `runner-lt`. The clients returned
 * are the test's own, for setting up and checking state beside runfleet.
 */
export async function motoNetwork(moto: Pick<Moto, 'url'>): Promise<MotoNetwork> {
  const config = {
    region: MOTO_REGION,
    endpoint: moto.url,
    credentials: MOTO_CREDENTIALS,
    maxAttempts: 1,
  };
  const ec2 = new EC2Client(config);
  const autoscaling = new AutoScalingClient(config);
  const vpc = await ec2.send(new CreateVpcCommand({ CidrBlock: '10.20.0.0/16' }));
  const subnet = async (cidr: string, zone: string) =>
    (
      await ec2.send(
        new CreateSubnetCommand({ VpcId: vpc.Vpc!.VpcId!, CidrBlock: cidr, AvailabilityZone: zone }),
      )
    ).Subnet!.SubnetId!;
  const subnets: [string, string] = [
    await subnet('10.20.1.0/24', 'eu-west-1a'),
    await subnet('10.20.2.0/24', 'eu-west-1b'),
  ];
  const lt = await ec2.send(
    new CreateLaunchTemplateCommand({
      LaunchTemplateName: MOTO_LAUNCH_TEMPLATE,
      LaunchTemplateData: { ImageId: 'ami-12c6146b', InstanceType: 't3.small' },
    }),
  );
  return {
    subnets,
    launchTemplateId: lt.LaunchTemplate!.LaunchTemplateId!,
    ec2,
    autoscaling,
    group: async (name) =>
      (await autoscaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] })))
        .AutoScalingGroups?.[0],
    instances: async (ids) => {
      const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: ids }));
      return new Map(
        (out.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => [i.InstanceId!, i]),
      );
    },
  };
}

export interface OperatorGroupSpec {
  name: string;
  maxSize: number;
  desired?: number;
  tags?: Record<string, string>;
  newInstancesProtectedFromScaleIn?: boolean;
}

/** A group created the way an operator would, outside runfleet (CreateAutoScalingGroup). */
export async function createOperatorGroup(net: MotoNetwork, spec: OperatorGroupSpec): Promise<void> {
  await net.autoscaling.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: spec.name,
      MinSize: 0,
      MaxSize: spec.maxSize,
      DesiredCapacity: spec.desired ?? 0,
      LaunchTemplate: { LaunchTemplateName: MOTO_LAUNCH_TEMPLATE, Version: '$Latest' },
      VPCZoneIdentifier: net.subnets[0],
      NewInstancesProtectedFromScaleIn: spec.newInstancesProtectedFromScaleIn ?? false,
      Tags: Object.entries(spec.tags ?? {}).map(([Key, Value]) => ({
        Key,
        Value,
        PropagateAtLaunch: true,
        ResourceId: spec.name,
        ResourceType: 'auto-scaling-group',
      })),
    }),
  );
}
