/**
 * The real manager against an instance whose sshd keeps OpenSSH's default `MaxSessions 10`, with
 * capacity_per_instance 20: 40 jobs all succeed (none lost to a refused channel, the instance never
 * marked broken), and each job costs one SSH session on the instance.
 */
import t from 'tap';
import { startHarness, staticFleetYaml } from './harness.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { sessionsStarted, startSshd } from '../../helpers/topology/sshd.js';

const FLEET = 'it-sessions';

if (requireOrSkip(t, 'sshd', 'ssh-keygen')) {
  const sshd = await startSshd(t, { maxSessions: 10, logLevel: 'VERBOSE' });
  const h = await startHarness(t, {
    fleetName: FLEET,
    fleetYaml: staticFleetYaml(FLEET, sshd, 20),
  });
  await h.readyInstances(1);

  t.test('MaxSessions 10, capacity 20: 40 jobs, every one succeeds', async (t) => {
    const before = sessionsStarted(sshd);
    const ids = Array.from({ length: 40 }, (_, i) => 100 + i);
    for (const id of ids) h.enqueue(id, { script: ['sleep 1', `echo "job ${id} done"`] });
    const jobs = await Promise.all(ids.map((id) => h.finished(id, 60_000)));
    t.same(
      jobs.map((j) => `${j.id} ${j.state}`),
      ids.map((id) => `${id} success`),
    );
    for (const j of jobs) t.match(j.log, `job ${j.id} done`);
    const sessions = sessionsStarted(sshd) - before;
    // One shell per job; the instance's shell probe and readiness checks may add a few.
    t.ok(sessions >= 40 && sessions <= 40 + 5, `one SSH session per job (${sessions} for 40 jobs)`);
    const [instance] = await h.instances();
    t.ok(
      instance && ['ready', 'in_use'].includes(instance.state),
      `the instance was never marked broken (${instance?.state})`,
    );
  });
}
