import t from 'tap';
import { firstAbort, withTimeout } from '../../src/util/abort.js';
import { manualTime } from '../../src/util/time.js';

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

t.test('withTimeout: aborts with a TimeoutError once the time has passed, or with its source', async (t) => {
  const time = manualTime('2026-12-04T00:00:00Z');
  const source = new AbortController();
  const limited = withTimeout(source.signal, 1000, time);
  time.advance(999);
  t.notOk(limited.signal.aborted, 'not before its time');
  time.advance(1);
  t.ok(limited.signal.aborted);
  t.equal((limited.signal.reason as DOMException).name, 'TimeoutError');

  const early = withTimeout(source.signal, 1000, time);
  source.abort('stopped');
  t.equal(early.signal.reason, 'stopped', "the source's abort, with its reason");

  const quiet = new AbortController();
  const cancelled = withTimeout(quiet.signal, 1000, time);
  cancelled.cancel();
  time.advance(5000);
  quiet.abort('after cancel');
  t.notOk(cancelled.signal.aborted, 'cancel() drops both the timer and the listener');
  t.equal(withTimeout(source.signal, 1000, time).signal.reason, 'stopped', 'an aborted source: at once');
});
