/**
 * The real manager against an instance whose sshd drops unauthenticated connections beyond
 * `MaxStartups 2` and holds one session per connection (`MaxSessions 1`), with 16 slots: every job
 * needs a connection of its own, so handshakes pile up beyond what sshd lets through. All 40 jobs
 * succeed: a dropped dial is retried on a new connection, never a failed job, and the instance is
 * never marked broken.
 */
import t from 'tap';
import { startHarness, staticFleetYaml } from './harness.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startSshd } from '../../helpers/topology/sshd.js';

const FLEET = 'it-startups';

if (requireOrSkip(t, 'sshd', 'ssh-keygen')) {
  const sshd = await startSshd(t, { maxStartups: '2', maxSessions: 1 });
  // connector.max_sessions 1 as the README advises for such a server: 16 connections wanted at once.
  const fleetYaml = staticFleetYaml(FLEET, sshd, 16).replace(
    /^connector: \{/m,
    'connector: { max_sessions: 1,',
  );
  const h = await startHarness(t, { fleetName: FLEET, fleetYaml });
  await h.readyInstances(1);

  t.test('MaxStartups 2, MaxSessions 1, capacity 16: 40 jobs, every one succeeds', async (t) => {
    const ids = Array.from({ length: 40 }, (_, i) => 300 + i);
    for (const id of ids) h.enqueue(id, { script: ['sleep 0.5', `echo "job ${id} done"`] });
    const jobs = await Promise.all(ids.map((id) => h.finished(id, 120_000)));
    t.same(
      jobs.map((j) => `${j.id} ${j.state}`),
      ids.map((id) => `${id} success`),
    );
    for (const j of jobs) t.match(j.log, `job ${j.id} done`);
    const [instance] = await h.instances();
    t.ok(
      instance && ['ready', 'in_use'].includes(instance.state),
      `the instance was never marked broken (${instance?.state})`,
    );
  });
}
