/**
 * End to end through the real SDK clients (signing, serialisation, XML parsing) against a tiny
 * AWS-compatible endpoint on 127.0.0.1: proves that an explicit `endpoint` and the standard
 * AWS_ENDPOINT_URL_* overrides are honoured and that observe's batched calls parse real responses.
 */
import t from 'tap';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAwsProvider } from '../../../src/providers/aws/index.js';

interface Seen {
  action: string;
  path: string;
  authorization: string;
}

const ASG_NS = 'http://autoscaling.amazonaws.com/doc/2011-01-01/';
const EC2_NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

const responses: Record<string, string> = {
  DescribeAutoScalingGroups: `<DescribeAutoScalingGroupsResponse xmlns="${ASG_NS}"><DescribeAutoScalingGroupsResult><AutoScalingGroups><member>
<AutoScalingGroupName>asg-web</AutoScalingGroupName><MinSize>0</MinSize><MaxSize>20</MaxSize><DesiredCapacity>1</DesiredCapacity>
<NewInstancesProtectedFromScaleIn>true</NewInstancesProtectedFromScaleIn><CapacityRebalance>false</CapacityRebalance>
<SuspendedProcesses><member><ProcessName>AZRebalance</ProcessName><SuspensionReason>User suspended</SuspensionReason></member></SuspendedProcesses>
<Instances><member><InstanceId>i-0abc</InstanceId><InstanceType>t3.small</InstanceType><AvailabilityZone>eu-west-1a</AvailabilityZone>
<LifecycleState>InService</LifecycleState><HealthStatus>Healthy</HealthStatus><ProtectedFromScaleIn>true</ProtectedFromScaleIn></member></Instances>
<Tags><member><ResourceId>asg-web</ResourceId><ResourceType>auto-scaling-group</ResourceType><Key>runfleet:fleet</Key><Value>web</Value><PropagateAtLaunch>true</PropagateAtLaunch></member></Tags>
</member></AutoScalingGroups></DescribeAutoScalingGroupsResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></DescribeAutoScalingGroupsResponse>`,
  DescribePolicies: `<DescribePoliciesResponse xmlns="${ASG_NS}"><DescribePoliciesResult><ScalingPolicies/></DescribePoliciesResult><ResponseMetadata><RequestId>req-2</RequestId></ResponseMetadata></DescribePoliciesResponse>`,
  DescribeInstances: `<DescribeInstancesResponse xmlns="${EC2_NS}"><requestId>req-3</requestId><reservationSet><item><reservationId>r-1</reservationId><instancesSet><item>
<instanceId>i-0abc</instanceId><instanceType>t3.small</instanceType><privateIpAddress>10.1.2.3</privateIpAddress><ipAddress>198.51.100.4</ipAddress>
<instanceState><code>16</code><name>running</name></instanceState><launchTime>2026-03-01T11:00:00.000Z</launchTime><instanceLifecycle>spot</instanceLifecycle>
<tagSet><item><key>runfleet:fleet</key><value>web</value></item></tagSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>`,
};

async function startEndpoint(t: { teardown(fn: () => Promise<void>): void }) {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const action = new URLSearchParams(body).get('Action') ?? '';
      // The SDK joins the operation path "/" onto the endpoint's path; compare without it.
      seen.push({
        action,
        path: (req.url ?? '').replace(/\/$/, '') || '/',
        authorization: req.headers.authorization ?? '',
      });
      const xml = responses[action];
      res.writeHead(xml ? 200 : 400, { 'content-type': 'text/xml' });
      res.end(
        xml ??
          `<ErrorResponse><Error><Code>InvalidAction</Code><Message>${action}</Message></Error></ErrorResponse>`,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const credentials = { accessKeyId: 'AKIDLOCALTEST', secretAccessKey: 'local-secret' };
const ref = { fleet: 'web', provider: 'aws' as const, name: 'asg-web' };

t.test('an explicit endpoint is used by every client', async (t) => {
  const { url, seen } = await startEndpoint(t);
  const provider = createAwsProvider({ region: 'eu-west-1', endpoint: url, credentials });
  const [group] = await provider.observe([ref]);
  t.match(group, {
    exists: true,
    settings: { max_size: 20, suspended_processes: ['AZRebalance'], tags: { 'runfleet:fleet': 'web' } },
    instances: [
      {
        id: 'i-0abc',
        state: 'running',
        healthy: true,
        lifecycle: 'spot',
        internal_addr: '10.1.2.3',
        external_addr: '198.51.100.4',
      },
    ],
  });
  t.same(
    seen.map((s) => s.action),
    ['DescribeInstances', 'DescribeAutoScalingGroups', 'DescribePolicies'],
  );
  t.ok(
    seen.every((s) => s.authorization.startsWith('AWS4-HMAC-SHA256 Credential=AKIDLOCALTEST/')),
    'requests are signed',
  );
});

t.test('AWS_ENDPOINT_URL_AUTO_SCALING / AWS_ENDPOINT_URL_EC2 route each service', async (t) => {
  const { url, seen } = await startEndpoint(t);
  const saved = { ...process.env };
  t.teardown(() => {
    process.env = saved;
  });
  process.env.AWS_ENDPOINT_URL_AUTO_SCALING = `${url}/autoscaling`;
  process.env.AWS_ENDPOINT_URL_EC2 = `${url}/ec2`;
  // Credentials from the standard chain (env), with instance metadata off: loopback only.
  process.env.AWS_ACCESS_KEY_ID = 'AKIDFROMENV';
  process.env.AWS_SECRET_ACCESS_KEY = 'env-secret';
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_ENDPOINT_URL;
  const provider = createAwsProvider({ region: 'eu-west-1' });
  const [group] = await provider.observe([ref]);
  t.equal(group?.instances[0]?.internal_addr, '10.1.2.3');
  t.same(
    seen.map((s) => `${s.action} ${s.path}`),
    ['DescribeInstances /ec2', 'DescribeAutoScalingGroups /autoscaling', 'DescribePolicies /autoscaling'],
  );
  t.ok(seen.every((s) => s.authorization.includes('Credential=AKIDFROMENV/')));
});

t.test('AWS_ENDPOINT_URL applies to all services', async (t) => {
  const { url, seen } = await startEndpoint(t);
  const saved = { ...process.env };
  t.teardown(() => {
    process.env = saved;
  });
  delete process.env.AWS_ENDPOINT_URL_AUTO_SCALING;
  delete process.env.AWS_ENDPOINT_URL_EC2;
  process.env.AWS_ENDPOINT_URL = `${url}/all`;
  const provider = createAwsProvider({ region: 'eu-west-1', credentials });
  await provider.observe([ref]);
  t.ok(seen.length === 3 && seen.every((s) => s.path === '/all'));
});
