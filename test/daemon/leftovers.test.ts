import t from 'tap';
import { describeLeftovers } from '../../src/daemon/leftovers.js';

const none = { intents: 0, adopted: [], retried: [], drained: [] };

t.test('nothing left: nothing said', async (t) => {
  t.equal(describeLeftovers(none), undefined);
});

t.test('only unlisted instances adopted (an adopted group): not called an interrupted run', async (t) => {
  const said = describeLeftovers({ ...none, adopted: ['i-1', 'i-2'] });
  t.equal(said, 'Adopted 2 instance(s) the provider shows that the state did not list yet.');
  t.notMatch(said, /interrupted/);
});

t.test('open intents, retried removals and drained hosts: an interrupted run', async (t) => {
  const said = describeLeftovers({ intents: 1, adopted: ['i-1'], retried: ['i-2'], drained: ['i-3'] });
  t.match(said, /^State left by an interrupted run: closed 1 open intent\(s\), adopted 1 instance\(s\)/);
  t.match(said, /removed 1 instance\(s\) whose removal was cut short/);
  t.match(said, /drained 1 instance\(s\) that held its jobs/);
});
