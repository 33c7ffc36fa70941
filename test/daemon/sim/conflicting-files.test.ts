/**
 * Config/daemon boundary: a second file defining a running fleet's name (or its Auto Scaling
 * group) must not change that fleet, whatever the file names sort as. Both definitions are invalid,
 * so the fleet is held on its last good definition and both files are reported.
 */
import t from 'tap';
import { minutes, simulate } from './harness.js';

const healthy = (extra = '') =>
  'name: healthy\nprovider: { type: local }\ncapacity_per_instance: 1\nmax_instances: 5\n' +
  `policy:\n  - idle_count: 2\n    idle_time: 5m\n${extra}`;
const copy = 'name: healthy\nprovider: { type: local }\nmax_instances: 1\npolicy:\n  - idle_count: 0\n';

for (const copyFile of ['f/aa-copy.yaml', 'f/zz-copy.yaml']) {
  t.test(`${copyFile} reusing the name of a running fleet changes nothing`, async (t) => {
    const h = await simulate({ fleets: { 'f/healthy.yaml': healthy() }, sim: { bootDelayMs: 1_000 } });
    await h.daemon.start();
    await h.advance(5_000);
    t.equal(h.live('healthy'), 2, 'running with idle_count 2');

    // The real loader reads files in sorted path order; so does this harness (insertion order).
    const sorted = Object.entries({ ...h.files, [copyFile]: copy }).sort(([a], [b]) => (a < b ? -1 : 1));
    for (const key of Object.keys(h.files)) delete h.files[key];
    Object.assign(h.files, Object.fromEntries(sorted));
    await h.daemon.reloadConfig();
    await h.advance(minutes(10));

    t.equal(h.live('healthy'), 2, 'instances untouched');
    t.equal(h.sim.removed, 0, 'nothing removed');
    const status = await h.daemon.status();
    const fleet = status.fleets.find((f) => f.name === 'healthy');
    t.equal(fleet?.status, 'held', 'held on its last good definition');
    t.equal(fleet?.max_instances, 5, 'the last good definition, not the copy');
    t.match(fleet?.config_errors.join('\n'), new RegExp(`also defined at ${copyFile}:1:7`));
    t.match(status.config_errors.join('\n'), /f\/healthy\.yaml:1:7: .*also defined at/);
    t.match(status.config_errors.join('\n'), new RegExp(`${copyFile}:1:7: .*also defined at f/healthy.yaml`));

    delete h.files[copyFile];
    h.files['f/healthy.yaml'] = healthy().replace('idle_count: 2', 'idle_count: 3');
    await h.daemon.reloadConfig();
    await h.advance(5_000);
    t.equal((await h.daemon.status()).fleets.find((f) => f.name === 'healthy')?.status, 'active');
    t.equal(h.live('healthy'), 3, 'with the copy gone, edits to the fleet apply again');
    t.same(h.sim.violations, []);
    await h.daemon.stop();
  });
}
