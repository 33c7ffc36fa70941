import t from 'tap';
import { canonicalJson, hashOf } from '../../src/util/hash.js';

t.test('canonical JSON ignores key order', async (t) => {
  t.equal(canonicalJson({ b: 1, a: { d: 2, c: 3 } }), '{"a":{"c":3,"d":2},"b":1}');
  t.equal(hashOf({ a: 1, b: 2 }), hashOf({ b: 2, a: 1 }));
  t.not(hashOf({ a: 1 }), hashOf({ a: 2 }));
});
