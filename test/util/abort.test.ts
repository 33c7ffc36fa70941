import t from 'tap';
import { firstAbort } from '../../src/util/abort.js';

t.test('firstAbort: the first source to abort decides, with its reason', async (t) => {
  const a = new AbortController();
  const b = new AbortController();
  const both = firstAbort(a.signal, b.signal);
  t.notOk(both.aborted);
  const seen: unknown[] = [];
  both.addEventListener('abort', () => seen.push(both.reason));
  b.abort('b first');
  a.abort('a later');
  t.ok(both.aborted);
  t.same(seen, ['b first'], 'aborts once, with the first reason');
  t.equal(firstAbort(a.signal, new AbortController().signal).reason, 'a later', 'an aborted source: at once');
  t.notOk(firstAbort(new AbortController().signal).aborted);
});
