import t from 'tap';
import { spawnSync } from 'node:child_process';
import { inspect } from 'node:util';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { SendSSHPublicKeyCommand } from '@aws-sdk/client-ec2-instance-connect';
import { ErrorCode } from '../../../src/errors.js';
import type { ConnectorSpec } from '../../../src/model/fleet.js';
import type { GroupRef } from '../../../src/model/observed.js';
import { EphemeralSshKey } from '../../../src/providers/aws/index.js';
import { ec2Instance, setup } from './fixtures/aws.js';

const ref: GroupRef = { fleet: 'web', provider: 'aws', name: 'asg-web' };
const connector = (overrides: Partial<ConnectorSpec> = {}): ConnectorSpec => ({
  username: 'ec2-user',
  protocol: 'ssh',
  port: 22,
  use_static_credentials: false,
  use_external_addr: false,
  keepalive: '30s',
  timeout: '10m',
  ...overrides,
});

t.test('the ephemeral key is a valid OpenSSH ed25519 pair that hides its private half', async (t) => {
  const key = EphemeralSshKey.generate('runfleet-m1');
  t.match(key.publicKey, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]+=* runfleet-m1$/);
  t.match(
    key.privateKeyPem(),
    /^-----BEGIN OPENSSH PRIVATE KEY-----\n[\s\S]+\n-----END OPENSSH PRIVATE KEY-----\n$/,
  );
  t.notMatch(JSON.stringify({ key }), /PRIVATE/);
  t.notMatch(inspect({ key }), /PRIVATE/);
  // Through `cat |` so ssh-keygen reads a pipe (node's stdin is a socket); never a file on disk.
  const keygen = spawnSync(
    'sh',
    ['-c', 'command -v ssh-keygen >/dev/null || exit 127; cat | ssh-keygen -y -f /dev/stdin'],
    {
      input: key.privateKeyPem(),
      encoding: 'utf8',
    },
  );
  if (keygen.status === 127) {
    t.comment('ssh-keygen not available: format check skipped');
    return;
  }
  t.equal(keygen.status, 0, keygen.stderr);
  t.equal(
    keygen.stdout.trim().split(' ').slice(0, 2).join(' '),
    key.publicKey.split(' ').slice(0, 2).join(' '),
    'ssh-keygen derives the same public key',
  );
});

t.test('pushes the ephemeral key with Instance Connect and returns the private address', async (t) => {
  const sshKey = EphemeralSshKey.generate();
  const { ec2, eic, provider } = setup({ connectorFor: () => connector(), sshKey });
  ec2
    .on(DescribeInstancesCommand)
    .resolves({ Reservations: [{ Instances: [ec2Instance('i-1', { publicIp: '203.0.113.7' })] }] });
  eic.on(SendSSHPublicKeyCommand).resolves({ Success: true, RequestId: 'r' });
  const info = await provider.connectInfo(ref, 'i-1');
  t.same(info, {
    id: 'i-1',
    address: ec2Instance('i-1').PrivateIpAddress,
    port: 22,
    username: 'ec2-user',
    protocol: 'ssh',
    privateKey: sshKey.privateKeyPem(),
  });
  t.same(eic.commandCalls(SendSSHPublicKeyCommand)[0]?.args[0].input, {
    InstanceId: 'i-1',
    InstanceOSUser: 'ec2-user',
    SSHPublicKey: sshKey.publicKey,
    AvailabilityZone: 'eu-west-1b',
  });
  t.same(ec2.commandCalls(DescribeInstancesCommand)[0]?.args[0].input.Filters, [
    { Name: 'instance-id', Values: ['i-1'] },
    { Name: 'tag:aws:autoscaling:groupName', Values: ['asg-web'] },
  ]);
  await provider.connectInfo(ref, 'i-1');
  t.equal(eic.commandCalls(SendSSHPublicKeyCommand).length, 2, 'pushed again at every call: nothing cached');
});

t.test('use_external_addr picks the public address, and its absence is explained', async (t) => {
  const { ec2, eic, provider } = setup({ connectorFor: () => connector({ use_external_addr: true }) });
  ec2
    .on(DescribeInstancesCommand)
    .resolvesOnce({ Reservations: [{ Instances: [ec2Instance('i-1', { publicIp: '203.0.113.7' })] }] })
    .resolvesOnce({ Reservations: [{ Instances: [ec2Instance('i-1')] }] });
  eic.on(SendSSHPublicKeyCommand).resolves({ Success: true });
  t.equal((await provider.connectInfo(ref, 'i-1')).address, '203.0.113.7');
  await t.rejects(provider.connectInfo(ref, 'i-1'), {
    message: /no public address/,
    hint: /use_external_addr/,
  });
});

t.test('static credentials read key_path at each call and skip Instance Connect', async (t) => {
  const reads: string[] = [];
  const { ec2, eic, provider } = setup({
    connectorFor: () => connector({ use_static_credentials: true, key_path: '/keys/runner' }),
    readKey: async (path) => {
      reads.push(path);
      return 'STATIC-KEY';
    },
  });
  ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [ec2Instance('i-1')] }] });
  t.equal((await provider.connectInfo(ref, 'i-1')).privateKey, 'STATIC-KEY');
  t.same(reads, ['/keys/runner']);
  t.equal(eic.calls().length, 0);
});

t.test('an instance outside the group or not running gets no credentials', async (t) => {
  const { ec2, eic, provider } = setup({ connectorFor: () => connector() });
  ec2
    .on(DescribeInstancesCommand)
    .resolvesOnce({ Reservations: [] })
    .resolvesOnce({ Reservations: [{ Instances: [ec2Instance('i-1', { state: 'pending' })] }] });
  await t.rejects(provider.connectInfo(ref, 'i-9'), {
    code: ErrorCode.PROVIDER,
    message: /not in Auto Scaling group asg-web/,
  });
  await t.rejects(provider.connectInfo(ref, 'i-1'), { retryable: true, message: /pending/ });
  t.equal(eic.calls().length, 0);
});

t.test('without connector settings connectInfo fails clearly', async (t) => {
  const { provider } = setup();
  await t.rejects(provider.connectInfo(ref, 'i-1'), { code: ErrorCode.INTERNAL, hint: /connectorFor/ });
});
