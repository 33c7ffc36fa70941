/**
 * Connection details for one instance, fresh at every call (addresses change on stop/start and
 * Instance Connect keys expire after 60 s, so nothing here is cached).
 *
 * Credentials:
 * - `use_static_credentials: true`: the key at `connector.key_path` comes from the injected
 *   `readKey` (the provider's reads are reused for a few seconds, so a rotated key is still picked
 *   up) and is returned as is;
 * - otherwise the manager's ephemeral ed25519 public key is pushed with EC2 Instance Connect
 *   `SendSSHPublicKey` for `connector.username`, and its private half is returned. The AMI must
 *   accept Instance Connect keys (ec2-instance-connect package / eic_run_authorized_keys).
 */
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { SendSSHPublicKeyCommand } from '@aws-sdk/client-ec2-instance-connect';
import { ErrorCode, FleetError, asError } from '../../errors.js';
import type { ConnectorSpec } from '../../model/fleet.js';
import type { GroupRef } from '../../model/observed.js';
import type { ConnectInfo } from '../provider.js';
import { callAws, type AwsContext } from './context.js';
import type { EphemeralSshKey } from './ssh-key.js';

import type { ReadKeyFile } from '../key-file.js';

export type { ReadKeyFile };

export interface ConnectDeps {
  connector: ConnectorSpec;
  /** The manager's key, generated on first use. */
  ephemeralKey: () => EphemeralSshKey;
  readKey: ReadKeyFile;
}

export async function awsConnectInfo(
  ctx: AwsContext,
  ref: GroupRef,
  id: string,
  deps: ConnectDeps,
  signal?: AbortSignal,
): Promise<ConnectInfo> {
  const { connector } = deps;
  // Filtering on the group tag as well means runfleet never hands out access to an instance
  // outside the fleet's group, whatever id it is asked for.
  const page = await callAws(
    ctx,
    'ec2',
    new DescribeInstancesCommand({
      Filters: [
        { Name: 'instance-id', Values: [id] },
        { Name: 'tag:aws:autoscaling:groupName', Values: [ref.name] },
      ],
    }),
    { signal },
  );
  const instance = (page.Reservations ?? [])
    .flatMap((r) => r.Instances ?? [])
    .find((i) => i.InstanceId === id);
  if (!instance) {
    throw new FleetError(ErrorCode.PROVIDER, `instance ${id} is not in Auto Scaling group ${ref.name}`, {
      hint: 'it may have been terminated; the next observe drops it',
    });
  }
  const state = instance.State?.Name;
  if (state !== 'running') {
    throw new FleetError(
      ErrorCode.PROVIDER,
      `instance ${id} is ${state ?? 'in an unknown state'}, not running`,
      {
        retryable: state === 'pending',
      },
    );
  }
  const address = connector.use_external_addr ? instance.PublicIpAddress : instance.PrivateIpAddress;
  if (!address) {
    throw new FleetError(
      ErrorCode.PROVIDER,
      `instance ${id} has no ${connector.use_external_addr ? 'public' : 'private'} address`,
      {
        hint: connector.use_external_addr
          ? 'use_external_addr needs a public IP: enable it in the launch template or subnet, or turn use_external_addr off'
          : 'the instance has no private IP yet; retry shortly',
        retryable: !connector.use_external_addr,
      },
    );
  }
  const info: ConnectInfo = {
    id,
    address,
    port: connector.port,
    username: connector.username,
    protocol: 'ssh',
  };
  if (connector.use_static_credentials) {
    if (connector.key_path !== undefined)
      info.privateKey = await readStaticKey(deps.readKey, connector.key_path);
    return info;
  }
  const key = deps.ephemeralKey();
  await callAws(
    ctx,
    'ec2-instance-connect',
    new SendSSHPublicKeyCommand({
      InstanceId: id,
      InstanceOSUser: connector.username,
      SSHPublicKey: key.publicKey,
      AvailabilityZone: instance.Placement?.AvailabilityZone,
    }),
    { signal },
  );
  info.privateKey = key.privateKeyPem();
  return info;
}

async function readStaticKey(readKey: ReadKeyFile, path: string): Promise<string> {
  try {
    return await readKey(path);
  } catch (e) {
    // The path is configuration, not a secret; the contents never reach the message.
    throw new FleetError(
      ErrorCode.CONFIG_INVALID,
      `cannot read connector.key_path ${path}: ${asError(e).message}`,
      {
        hint: 'check that the file exists and is readable by runfleet',
      },
    );
  }
}
