import t from 'tap';
import { expandValue, expandVariables } from '../../../src/runtime/script/variables.js';

t.test('expandVariables: one level of $NAME and ${NAME}, $$ literal, unknown names empty', async (t) => {
  const plain = { key: 'PLAIN', value: 'no dollars here', public: true };
  const raw = { key: 'RAW', value: '$HOME stays', public: true, raw: true };
  const out = expandVariables([
    plain,
    raw,
    { key: 'HOME', value: '/home/ci', public: true },
    { key: 'A', value: '$HOME/${PLAIN}/$NOPE/$$HOME/$RAW', public: true },
  ]);
  t.equal(out[0], plain, 'a value without $ is the same entry');
  t.equal(out[1], raw, 'a raw value is not expanded');
  t.equal(out[3]!.value, '/home/ci/no dollars here//$HOME/$HOME stays', 'one level: $RAW is not re-expanded');
  t.equal(expandValue('plain', new Map()), 'plain');
  t.equal(expandValue('${X}-$X', new Map([['X', '1']])), '1-1');
});
