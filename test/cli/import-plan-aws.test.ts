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
import { assertAdoptionPlan, IMPORT_AWS_CONFIG } from './fixtures/import-aws-config.js';

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
  assertAdoptionPlan(t, plan.stdout);
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
