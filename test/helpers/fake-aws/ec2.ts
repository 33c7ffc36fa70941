/**
 * The EC2 actions (ec2Query, API version 2016-11-15) and EC2 Instance Connect's SendSSHPublicKey
 * (awsJson1_1) of the fake endpoint. Filters follow the EC2 reference: values of one filter are
 * ORed, filters are ANDed, an unknown filter name is `InvalidParameterValue`, and `MaxResults`
 * (5..1000) cannot be combined with explicit instance ids.
 */
import { AwsFault, paginate, type QueryParams, type XmlObject } from './wire.js';
import { ACCOUNT_ID, type FakeInstance, type World } from './world.js';

type Handler = (world: World, p: QueryParams) => XmlObject;

const STATE_CODES: Record<string, number> = { pending: 0, running: 16, 'shutting-down': 32, terminated: 48 };

interface Filter {
  name: string;
  values: string[];
}

function readFilters(p: QueryParams): Filter[] {
  return p
    .listPrefixes('Filter')
    .map((f) => ({ name: p.get(`${f}.Name`) ?? '', values: p.list(`${f}.Value`) }));
}

const invalidParameter = (message: string) => new AwsFault('InvalidParameterValue', message);

function maxResults(p: QueryParams): number | undefined {
  const n = p.int('MaxResults');
  if (n !== undefined && (n < 5 || n > 1000)) {
    throw invalidParameter(
      `Value ( ${n} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.`,
    );
  }
  return n;
}

function instanceMatches(i: FakeInstance, f: Filter): boolean {
  const { name, values } = f;
  switch (name) {
    case 'instance-id':
      return values.includes(i.id);
    case 'instance-state-name':
      return values.includes(i.ec2State);
    case 'availability-zone':
      return values.includes(i.availabilityZone);
    case 'subnet-id':
      return values.includes(i.subnetId);
    case 'instance-lifecycle':
      return values.includes(i.spot ? 'spot' : '');
    case 'tag-key':
      return values.some((v) => i.tags.has(v));
    case 'tag-value':
      return [...i.tags.values()].some((v) => values.includes(v));
    default:
      if (name.startsWith('tag:')) {
        const v = i.tags.get(name.slice(4));
        return v !== undefined && values.includes(v);
      }
      throw invalidParameter(`The filter '${name}' is invalid`);
  }
}

function instanceXml(i: FakeInstance, region: string): XmlObject {
  return {
    instanceId: i.id,
    imageId: 'ami-0123456789abcdef0',
    instanceState: { code: STATE_CODES[i.ec2State], name: i.ec2State },
    privateDnsName: `ip-${i.privateIp.replace(/\./g, '-')}.${region}.compute.internal`,
    dnsName: '',
    amiLaunchIndex: 0,
    instanceType: i.instanceType,
    launchTime: i.launchTime,
    placement: { availabilityZone: i.availabilityZone, tenancy: 'default' },
    subnetId: i.subnetId,
    vpcId: 'vpc-0fa4e0000000000aa',
    privateIpAddress: i.privateIp,
    ipAddress: i.publicIp,
    architecture: 'x86_64',
    instanceLifecycle: i.spot ? 'spot' : undefined,
    spotInstanceRequestId: i.spot?.requestId,
    tagSet: [...i.tags].map(([key, value]) => ({ key, value })),
  };
}

const describeInstances: Handler = (world, p) => {
  const ids = p.list('InstanceId');
  const max = maxResults(p);
  if (ids.length > 0 && max !== undefined) {
    throw new AwsFault(
      'InvalidParameterCombination',
      'The parameter instancesSet cannot be used with the parameter maxResults',
    );
  }
  const missing = ids.filter((id) => !world.instances.has(id));
  if (missing.length > 0) {
    throw new AwsFault('InvalidInstanceID.NotFound', `The instance IDs '${missing.join(', ')}' do not exist`);
  }
  const filters = readFilters(p);
  const matching = [...world.instances.values()].filter(
    (i) => (ids.length === 0 || ids.includes(i.id)) && filters.every((f) => instanceMatches(i, f)),
  );
  // Without MaxResults EC2 returns everything at once.
  const { page, next } = paginate(matching, max ?? Math.max(1, matching.length), p.get('NextToken'));
  return {
    // An Auto Scaling group launches instances one per reservation.
    reservationSet: page.map((i) => ({
      reservationId: `r-${i.id.slice(2)}`,
      ownerId: ACCOUNT_ID,
      groupSet: [],
      instancesSet: [instanceXml(i, world.region)],
    })),
    nextToken: next,
  };
};

const describeSpotInstanceRequests: Handler = (world, p) => {
  const ids = p.list('SpotInstanceRequestId');
  const max = maxResults(p);
  const filters = readFilters(p);
  const spot = [...world.instances.values()].filter((i) => i.spot !== undefined);
  const matching = spot.filter(
    (i) =>
      (ids.length === 0 || ids.includes(i.spot!.requestId)) &&
      filters.every(({ name, values }) => {
        if (name === 'spot-instance-request-id') return values.includes(i.spot!.requestId);
        if (name === 'instance-id') return values.includes(i.id);
        if (name === 'status-code') return values.includes(i.spot!.statusCode);
        throw invalidParameter(`The filter '${name}' is invalid`);
      }),
  );
  const { page, next } = paginate(matching, max ?? Math.max(1, matching.length), p.get('NextToken'));
  return {
    spotInstanceRequestSet: page.map((i) => ({
      spotInstanceRequestId: i.spot!.requestId,
      spotPrice: '0.100000',
      type: 'one-time',
      state: i.ec2State === 'terminated' ? 'closed' : 'active',
      status: {
        code: i.spot!.statusCode,
        updateTime: new Date(world.now()),
        message: `spot request status ${i.spot!.statusCode}`,
      },
      launchSpecification: { instanceType: i.instanceType },
      instanceId: i.id,
      createTime: i.launchTime,
      launchedAvailabilityZone: i.availabilityZone,
    })),
    nextToken: next,
  };
};

export const EC2_ACTIONS: Record<string, Handler> = {
  DescribeInstances: describeInstances,
  DescribeSpotInstanceRequests: describeSpotInstanceRequests,
};

/** SendSSHPublicKey: validates like the service and records the key; answers `{RequestId, Success}`. */
export function sendSshPublicKey(world: World, body: Record<string, unknown>, requestId: string): object {
  const id = typeof body.InstanceId === 'string' ? body.InstanceId : '';
  const user = typeof body.InstanceOSUser === 'string' ? body.InstanceOSUser : '';
  const key = typeof body.SSHPublicKey === 'string' ? body.SSHPublicKey : '';
  if (!id || !user || !key)
    throw new AwsFault('InvalidArgsException', 'InstanceId, InstanceOSUser and SSHPublicKey are required');
  if (!/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$/.test(key)) {
    throw new AwsFault('InvalidArgsException', 'The SSH public key is not in a supported format');
  }
  const inst = world.instances.get(id);
  if (!inst || inst.ec2State === 'terminated') {
    throw new AwsFault('EC2InstanceNotFoundException', `Instance not found: ${id}`);
  }
  if (inst.ec2State !== 'running') {
    throw new AwsFault('EC2InstanceStateInvalidException', `Instance ${id} is not in a valid state`);
  }
  const az = typeof body.AvailabilityZone === 'string' ? body.AvailabilityZone : undefined;
  if (az !== undefined && az !== inst.availabilityZone) {
    throw new AwsFault('InvalidArgsException', `Instance ${id} is not in availability zone ${az}`);
  }
  world.sshKeys.push({
    instanceId: id,
    osUser: user,
    publicKey: key,
    ...(az ? { availabilityZone: az } : {}),
  });
  return { RequestId: requestId, Success: true };
}
