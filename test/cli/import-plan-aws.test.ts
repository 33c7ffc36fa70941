/**
 * The migration path end to end: `runfleet import` of a GitLab Runner config.toml whose AWS plugin
 * names an existing Auto Scaling group, then `runfleet validate` and `runfleet plan` (real binary,
 * real SDK clients) against a fake AWS endpoint where that group exists as GitLab's docs ask it to
 * be set up, with one instance the old manager started. The plan adopts the group and shows only
 * what runfleet changes: its ownership tags; the instance is kept.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { assertCleanTraffic, awsWorkspace } from '../providers/aws/e2e/fixtures/workspace.js';
import { IMPORT_AWS_CONFIG } from './fixtures/import-aws-config.js';

t.test('import, then plan against the adopted group: only the ownership tags change', async (t) => {
  const ws = await awsWorkspace(t);
  const { fake } = ws;
  // As GitLab's AWS plugin docs ask: max = max_instances, scale-in protection, AZRebalance suspended.
  fake.seedGroup({
    name: 'ci-docker-asg',
    maxSize: 4,
    desired: 1,
    newInstancesProtectedFromScaleIn: true,
    suspendedProcesses: ['AZRebalance'],
    tags: { team: 'ci' },
  });
  fake.settle();
  const oldInstance = fake.group('ci-docker-asg')!.instances[0]!.id;
  await writeFile(join(ws.dir, 'config.toml'), IMPORT_AWS_CONFIG);

  const imported = await ws.cli(['import', 'config.toml']);
  t.equal(imported.code, 0, imported.stderr);
  t.match(imported.stdout, /Wrote fleets\/ci-docker\.yaml/);
  t.equal(fake.calls.length, 0, 'import never calls AWS');

  const validated = await ws.cli(['validate']);
  t.equal(validated.code, 0, validated.stderr);

  const plan = await ws.cli(['plan', '--detailed-exitcode'], { AWS_ENDPOINT_URL: fake.url });
  t.equal(plan.code, 2, `changes: the ownership tags\n${plan.stdout}\n${plan.stderr}`);
  t.match(plan.stdout, /# fleet\.ci-docker will be created/);
  // The team tag is the operator's: runfleet neither shows nor touches it.
  t.match(
    plan.stdout,
    /~ group\.tags\s+= \{\} -> \{ runfleet:fleet = "ci-docker", runfleet:lifecycle = "adopted" \}/,
  );
  t.match(
    plan.stdout,
    /# \(5 unchanged attributes hidden\)/,
    'min/max size, protection, rebalance, AZRebalance match',
  );
  const changed = plan.stdout.split('\n').filter((l) => /^\s+[~+-] group\./.test(l));
  t.same(
    changed.map((l) => l.trim().split(/\s+/)[1]),
    ['group.tags'],
    `only the tags change on the group (min/max size, protection, AZRebalance already match)\n${plan.stdout}`,
  );
  // idle_count 2 slots / 2 per instance = 1 instance: the old manager's instance is enough.
  t.notMatch(plan.stdout, /instances = 1 -> [02-9]/, 'no instance is added or removed');
  t.match(plan.stdout, /Plan: 1 to add, 0 to change, 0 to destroy\./, 'the one add is the fleet itself');
  t.ok(
    fake.calls.every((c) => c.action.startsWith('Describe')),
    'plan only reads: ' + [...new Set(fake.calls.map((c) => c.action))].join(', '),
  );
  t.ok(
    fake.group('ci-docker-asg')?.instances.some((i) => i.id === oldInstance),
    "the old manager's instance is kept",
  );
  t.notMatch(
    imported.stdout + imported.stderr + plan.stdout + plan.stderr,
    /glrt-E2E/,
    'the token is never printed',
  );
  assertCleanTraffic(t, fake);
});
