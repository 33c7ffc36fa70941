// AWS API calls per observe cycle, runfleet's batched observe vs per-fleet polling.
//
// Runs the compiled provider (dist/) on real SDK clients whose middleware stack is short-circuited
// by a counting fake at the `initialize` step: every command is counted and answered from an
// in-memory Region of N fleets × 20 instances, honouring names, filters, page sizes and NextToken.
// No network. Build first: npx tsc -p tsconfig.build.json
//
//   node bench/aws-calls.mjs
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { EC2Client } from '@aws-sdk/client-ec2';
import { EC2InstanceConnectClient } from '@aws-sdk/client-ec2-instance-connect';

const { createAwsProvider } = await import('../dist/providers/aws/index.js');

const INSTANCES_PER_FLEET = 20;
const FLEET_COUNTS = [1, 10, 100, 500];
const INTERVAL_S = 2;

function region(fleets) {
  const groups = new Map();
  const instances = [];
  for (let f = 0; f < fleets; f++) {
    const fleet = `fleet-${f}`;
    const name = `runfleet-${fleet}`;
    const members = [];
    for (let i = 0; i < INSTANCES_PER_FLEET; i++) {
      const id = `i-${f.toString(16).padStart(8, '0')}${i.toString(16).padStart(9, '0')}`;
      members.push({
        InstanceId: id,
        AvailabilityZone: 'eu-west-1a',
        LifecycleState: 'InService',
        HealthStatus: 'Healthy',
        ProtectedFromScaleIn: true,
      });
      instances.push({
        InstanceId: id,
        State: { Name: 'running', Code: 16 },
        PrivateIpAddress: '10.0.0.1',
        LaunchTime: new Date(0),
        Tags: [
          { Key: 'runfleet:fleet', Value: fleet },
          { Key: 'aws:autoscaling:groupName', Value: name },
        ],
      });
    }
    groups.set(name, {
      AutoScalingGroupName: name,
      MinSize: 0,
      MaxSize: 40,
      DesiredCapacity: INSTANCES_PER_FLEET,
      Instances: members,
      SuspendedProcesses: [{ ProcessName: 'AZRebalance' }],
      Tags: [{ Key: 'runfleet:fleet', Value: fleet }],
    });
  }
  return { groups, instances };
}

function page(items, size, token) {
  const start = token ? Number(token) : 0;
  const end = start + size;
  return { items: items.slice(start, end), next: end < items.length ? String(end) : undefined };
}

function answer(world, command, input) {
  switch (command) {
    case 'DescribeAutoScalingGroupsCommand': {
      const all = (input.AutoScalingGroupNames ?? []).flatMap((n) =>
        world.groups.has(n) ? [world.groups.get(n)] : [],
      );
      const p = page(all, input.MaxRecords ?? 50, input.NextToken);
      return { AutoScalingGroups: p.items, NextToken: p.next };
    }
    case 'DescribeInstancesCommand': {
      const matches = (inst) =>
        (input.Filters ?? []).every((f) => {
          if (f.Name === 'instance-id') return f.Values.includes(inst.InstanceId);
          if (f.Name === 'instance-state-name') return f.Values.includes(inst.State.Name);
          if (f.Name.startsWith('tag:')) {
            const key = f.Name.slice(4);
            return f.Values.includes(inst.Tags.find((t) => t.Key === key)?.Value);
          }
          return true;
        });
      const p = page(world.instances.filter(matches), input.MaxResults ?? 1000, input.NextToken);
      return { Reservations: [{ Instances: p.items }], NextToken: p.next };
    }
    case 'DescribePoliciesCommand':
      return { ScalingPolicies: [] };
    default:
      throw new Error(`bench fake does not answer ${command}`);
  }
}

function countingClients(world, counts) {
  const opts = {
    region: 'eu-west-1',
    credentials: { accessKeyId: 'AKIDBENCH', secretAccessKey: 'x' },
    maxAttempts: 1,
  };
  const clients = {
    autoscaling: new AutoScalingClient(opts),
    ec2: new EC2Client(opts),
    instanceConnect: new EC2InstanceConnectClient(opts),
  };
  for (const client of Object.values(clients)) {
    client.middlewareStack.add(
      () => async (args) => {
        const command = args.constructor?.name;
        return { output: { $metadata: {}, ...answer(world, command, args.input) }, response: {} };
      },
      { step: 'initialize', name: 'benchFake', priority: 'low' },
    );
    const send = client.send.bind(client);
    client.send = (command, ...rest) => {
      const name = command.constructor.name.replace(/Command$/, '');
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return send(command, ...rest);
    };
  }
  return clients;
}

const rows = [];
for (const fleets of FLEET_COUNTS) {
  const world = region(fleets);
  const counts = new Map();
  const provider = createAwsProvider({ region: 'eu-west-1', clients: countingClients(world, counts) });
  const refs = [...world.groups.keys()].map((name) => ({
    fleet: name.slice('runfleet-'.length),
    provider: 'aws',
    name,
  }));
  const observed = await provider.observe(refs);
  const seen = observed.reduce((n, g) => n + g.instances.filter((i) => i.internal_addr).length, 0);
  if (seen !== fleets * INSTANCES_PER_FLEET) throw new Error(`observed ${seen} instances with addresses`);
  const first = Object.fromEntries(counts);
  counts.clear();
  await provider.observe(refs); // steady state: scaling policies come from the cache
  const steady = [...counts.values()].reduce((a, b) => a + b, 0);
  const firstTotal = Object.values(first).reduce((a, b) => a + b, 0);
  const baseline = 2 * fleets;
  rows.push({
    fleets,
    instances: fleets * INSTANCES_PER_FLEET,
    asg: first.DescribeAutoScalingGroups ?? 0,
    ec2: first.DescribeInstances ?? 0,
    policies: first.DescribePolicies ?? 0,
    firstTotal,
    steady,
    baseline,
  });
}

const header = [
  'fleets',
  'instances',
  'DescribeASGs',
  'DescribeInstances',
  'DescribePolicies',
  'runfleet calls/cycle (first)',
  'runfleet calls/cycle (steady)',
  'per-fleet polling calls/cycle',
  `polling calls/s @${INTERVAL_S}s`,
  `runfleet calls/s @${INTERVAL_S}s`,
];
const table = rows.map((r) => [
  r.fleets,
  r.instances,
  r.asg,
  r.ec2,
  r.policies,
  r.firstTotal,
  r.steady,
  r.baseline,
  (r.baseline / INTERVAL_S).toFixed(1),
  (r.steady / INTERVAL_S).toFixed(1),
]);
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map(() => '---:').join('|')}|`);
for (const row of table) console.log(`| ${row.join(' | ')} |`);
console.log(
  `\nEC2 non-mutating budget: 20 calls/s refill (100 burst); Auto Scaling: one unpublished bucket per account+Region.` +
    `\nBaseline: one DescribeAutoScalingGroups + one DescribeInstances per fleet per cycle (GitLab's per-group polling).` +
    `\nDescribePolicies is cached for 60 s, so the steady cycle omits it.`,
);
