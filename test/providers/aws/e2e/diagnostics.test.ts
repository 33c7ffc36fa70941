/**
 * What `runfleet plan` reports about AWS groups through the real binary and SDK clients: a group
 * with scaling policies is a plan error (exit 1, hint, nothing changed), a group tagged as
 * runfleet's without a fleet file is an orphan warning, and AWS_ENDPOINT_URL alone (no `endpoint`
 * in the file) routes every call to the endpoint.
 */
import t from 'tap';
import { assertCleanTraffic, awsFleetYaml, awsWorkspace } from './fixtures/workspace.js';

/** An operator's group already set up the way runfleet manages it. */
const compliantGroup = (name: string, fleet: string) => ({
  name,
  maxSize: 3,
  newInstancesProtectedFromScaleIn: true,
  suspendedProcesses: ['AZRebalance'],
  tags: { 'runfleet:fleet': fleet, 'runfleet:lifecycle': 'adopted' },
});

t.test('a group with scaling policies is a plan error with a hint; apply changes nothing', async (t) => {
  const ws = await awsWorkspace(t);
  const { fake } = ws;
  fake.seedGroup(compliantGroup('ci-pool', 'pool'));
  fake.setPolicies('ci-pool', ['cpu-target-50']);
  await ws.writeFleet(
    'pool',
    awsFleetYaml('pool', { endpoint: fake.url, adopt: 'ci-pool', maxInstances: 3, idleCount: 1 }),
  );

  const plan = await ws.cli(['plan']);
  t.equal(plan.code, 1, 'a plan with errors exits 1');
  const shown = plan.stdout + plan.stderr;
  t.match(shown, /GROUP_HAS_SCALING_POLICIES/);
  t.match(shown, /Auto Scaling group ci-pool has scaling policies attached: cpu-target-50/);
  t.match(shown, /aws autoscaling delete-policy --auto-scaling-group-name ci-pool/);

  const apply = await ws.cli(['apply', '--auto-approve']);
  t.equal(apply.code, 1);
  t.ok(
    fake.calls.every((c) => c.action.startsWith('Describe')),
    'nothing was written to the group',
  );
  t.equal(fake.group('ci-pool')?.desired, 0);
  assertCleanTraffic(t, fake);
});

t.test('AWS_ENDPOINT_URL without provider.endpoint; an orphan group is a warning', async (t) => {
  const ws = await awsWorkspace(t, { pendingMs: 0 });
  const { fake } = ws;
  fake.seedGroup({
    name: 'runfleet-retired',
    maxSize: 2,
    tags: { 'runfleet:fleet': 'retired', 'runfleet:lifecycle': 'owned' },
  });
  await ws.writeFleet('env', awsFleetYaml('env', { endpoint: null, maxInstances: 2, idleCount: 1 }));
  const viaEnv = { AWS_ENDPOINT_URL: fake.url };

  const plan = await ws.cli(['plan'], viaEnv);
  t.equal(plan.code, 0, plan.stderr);
  t.match(plan.stdout, /# fleet\.env will be created/);
  t.notMatch(plan.stdout, /provider\.endpoint/, 'the file names no endpoint');
  const shown = plan.stdout + plan.stderr;
  t.match(shown, /ORPHAN_GROUP/);
  t.match(
    shown,
    /runfleet-retired is tagged as runfleet's for fleet "retired", but no fleet file defines it/,
  );

  const apply = await ws.cli(['apply', '--auto-approve'], viaEnv);
  t.equal(apply.code, 0, apply.stderr);
  t.match(fake.group('runfleet-env'), {
    maxSize: 2,
    desired: 1,
    tags: { 'runfleet:lifecycle': { value: 'owned' } },
  });
  t.ok(fake.group('runfleet-retired'), 'the orphan group is never deleted');
  t.equal(fake.count('DeleteAutoScalingGroup'), 0);
  t.equal(fake.count('TerminateInstanceInAutoScalingGroup'), 0);

  assertCleanTraffic(t, fake);
});
