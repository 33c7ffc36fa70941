/**
 * Config/daemon boundary: an alias bomb, a nesting bomb or a binary file among the fleet files is
 * an error of that file alone. Reloads go on, edits to the other files apply, and status names it.
 */
import t from 'tap';
import { ALIAS_BOMB, hostileFiles } from '../../helpers/hostile-files.js';
import { simulate } from './harness.js';

const healthy = (idle: number) =>
  'name: healthy\nprovider: { type: local }\ncapacity_per_instance: 1\nmax_instances: 5\n' +
  `policy:\n  - idle_count: ${idle}\n    idle_time: 5m\n`;

t.test('a hostile file holds back only itself; edits to other files still apply', async (t) => {
  const h = await simulate({ fleets: { 'f/healthy.yaml': healthy(2) }, sim: { bootDelayMs: 1_000 } });
  await h.daemon.start();
  await h.advance(5_000);
  t.equal(h.live('healthy'), 2);

  h.files['f/bomb.yaml'] = ALIAS_BOMB;
  h.files['f/nested.yaml'] = String(hostileFiles()['nested-seq.yaml']);
  h.files['f/nul.yaml'] = 'name: a\0b\n';
  h.files['f/healthy.yaml'] = healthy(3);
  await h.daemon.reloadConfig();
  await h.advance(5_000);

  t.equal(h.live('healthy'), 3, 'the edit to healthy.yaml was applied');
  const status = await h.daemon.status();
  t.equal(status.fleets.find((f) => f.name === 'healthy')?.status, 'active');
  t.strictSame(
    status.config_errors.map((e) => e.split('\n')[0]),
    [
      'f/bomb.yaml:2:8: YAML aliases expand to too much data (more than 100 aliased values, as in an alias bomb)',
      'f/nested.yaml:1:70: YAML nests more than 64 levels deep here',
      'f/nul.yaml:1:8: not a text file: it holds control characters (the first one is here)',
    ],
    'status names each file, with its line',
  );
  const logged = h.log.lines.filter((l) => l.event === 'config_error').map((l) => [l.file, l.line]);
  t.strictSame(logged, [
    ['f/bomb.yaml', 2],
    ['f/nested.yaml', 1],
    ['f/nul.yaml', 1],
  ]);
  t.notOk(
    h.log.lines.some((l) => /cannot read fleet files/.test(String(l.msg))),
    'no reload was given up',
  );
  await h.daemon.stop();
});
