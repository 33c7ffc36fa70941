import t from 'tap';
import { diffSpecs, flattenSpec } from '../../src/plan/spec-diff.js';
import { fleetSpec } from '../helpers/fake-state.js';

t.test('flattening: sorted dotted paths, scalar lists as one leaf, objects in lists by index', async (t) => {
  const leaves = flattenSpec(fleetSpec({ policy: [{}, { periods: ['* 8 * * *', '* 9 * * *'] }] }));
  t.same(leaves.get('policy[1].periods'), ['* 8 * * *', '* 9 * * *']);
  t.equal(leaves.get('docker.image'), 'alpine:3.20');
  t.same(leaves.get('docker.volumes'), [], 'an empty list is a leaf');
  t.same(leaves.get('gitlab.token'), { env: 'RUNFLEET_GITLAB_TOKEN' }, 'the sensitive reference is one leaf');
  t.notOk(leaves.has('gitlab.token.env'));
  t.notOk(leaves.has('connector.key_path'), 'undefined fields are left out');
  const keys = [...leaves.keys()];
  t.same(keys.slice(0, 3), ['apply', 'capacity_per_instance', 'connector.keepalive'], 'sorted');
});

t.test('added and removed attributes and list entries', async (t) => {
  const before = fleetSpec({ connector: { key_path: '/keys/id' } });
  const after = fleetSpec({ policy: [{}, { idle_count: 3, timezone: 'Europe/Berlin' }] });
  const { changes, unchanged } = diffSpecs(before, after);
  const removed = changes.find((c) => c.path === 'connector.key_path');
  t.same(removed, { path: 'connector.key_path', old: '/keys/id' });
  const added = changes.filter((c) => c.path.startsWith('policy[1].'));
  t.equal(added.length, 7, 'every field of the new policy entry');
  t.ok(added.every((c) => c.old === undefined));
  t.equal(unchanged + 1, flattenSpec(before).size, 'everything but key_path unchanged');
});

t.test('a create and a delete list every attribute without replacement marks', async (t) => {
  const spec = fleetSpec({ provider: { type: 'aws', region: 'eu-west-1', auto_scaling_group: 'ci' } });
  const created = diffSpecs(undefined, spec);
  const deleted = diffSpecs(spec, undefined);
  t.equal(created.changes.length, flattenSpec(spec).size);
  t.equal(deleted.changes.length, flattenSpec(spec).size);
  t.notOk([...created.changes, ...deleted.changes].some((c) => c.forcesReplacement));
});

t.test('adopting an ASG by name forces replacement', async (t) => {
  const before = fleetSpec({ provider: { type: 'aws', region: 'eu-west-1' } });
  const after = fleetSpec({ provider: { type: 'aws', region: 'eu-west-1', auto_scaling_group: 'ci' } });
  t.same(diffSpecs(before, after).changes, [
    { path: 'provider.auto_scaling_group', new: 'ci', forcesReplacement: true },
  ]);
});

t.test('an unchanged spec counts every leaf as unchanged', async (t) => {
  for (const spec of [
    fleetSpec(),
    fleetSpec({ policy: [{}, {}], connector: { key_path: '/k' }, docker: null }),
  ]) {
    const copy = JSON.parse(JSON.stringify(spec)) as typeof spec;
    t.same(diffSpecs(spec, copy), { changes: [], unchanged: flattenSpec(spec).size });
  }
});

t.test('the cache keys are sensitive: one leaf each, marked, never split into env/file', async (t) => {
  const cache = (env: string) => ({
    type: 's3' as const,
    path: '',
    shared: false,
    max_uploaded_archive_size: 0,
    s3: {
      server_address: 's3.amazonaws.com',
      bucket_name: 'b',
      bucket_location: 'us-east-1',
      insecure: false,
      authentication_type: 'access-key' as const,
      access_key: { env: `${env}_ID` },
      secret_key: { env },
    },
  });
  const { changes } = diffSpecs(fleetSpec({ cache: cache('OLD') }), fleetSpec({ cache: cache('NEW') }));
  t.same(
    changes.map((c) => [c.path, c.sensitive]),
    [
      ['cache.s3.access_key', true],
      ['cache.s3.secret_key', true],
    ],
  );
});
