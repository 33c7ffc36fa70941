import t from 'tap';
import { diffGroupSettings, jsonEqual } from '../../src/model/settings-diff.js';

t.test('group settings: only desired keys, missing group adds all', async (t) => {
  const desired = { max_size: 10, subnets: ['a', 'b'], tags: { x: '1', y: '2' } };
  const same = diffGroupSettings(desired, {
    max_size: 10,
    subnets: ['a', 'b'],
    tags: { y: '2', x: '1' },
    other: 1,
  });
  t.same(same, { changes: [], unchanged: 3 }, 'key order inside values does not matter');
  const differ = diffGroupSettings(desired, { max_size: 4, subnets: ['a'], tags: { x: '1', y: '2' } });
  t.same(differ.changes, [
    { path: 'group.max_size', old: 4, new: 10 },
    { path: 'group.subnets', old: ['a'], new: ['a', 'b'] },
  ]);
  t.equal(diffGroupSettings(desired, undefined).changes.length, 3);
});

t.test('jsonEqual', async (t) => {
  t.ok(jsonEqual({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] }));
  t.ok(jsonEqual({ a: 1, b: undefined }, { a: 1 }), 'undefined fields are absent');
  t.notOk(jsonEqual([1, 2], [2, 1]), 'list order matters');
  t.notOk(jsonEqual({ a: 1 }, [1]));
  t.notOk(jsonEqual(null, {}));
});
