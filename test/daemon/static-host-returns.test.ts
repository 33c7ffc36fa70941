/**
 * A static host that fails is not replaceable: it must come back into service when it answers
 * again, also across a daemon restart, and `status` says why it is out meanwhile. A real sshd on
 * 127.x is the host; the real manager runs the fleet; the host dies (sshd and all it runs) and
 * returns with the same host key.
 */
import { join } from 'node:path';
import t from 'tap';
import { startManager, type Manager } from '../../src/cli/root.js';
import type { FleetStatus } from '../../src/daemon/status.js';
import { memoryLogger } from '../../src/util/logger.js';
import { until } from '../cli/helpers.js';
import { requireOrSkip } from '../helpers/topology/require-or-skip.js';
import { startSshd } from '../helpers/topology/sshd.js';

if (requireOrSkip(t, 'sshd', 'ssh-keygen')) {
  t.test('a static host out of service returns once it answers', async (t) => {
    const sshd = await startSshd(t);
    const id = `${sshd.host}:${sshd.port}`;
    const dir = t.testdir({
      fleets: {
        'lab.yaml': [
          'name: lab',
          `provider: { type: static, hosts: ['${id}'] }`,
          'max_instances: 1',
          `connector: { username: root, key_path: ${join(sshd.dir, 'userkey')} }`,
          'policy:',
          '  - idle_count: 1',
        ].join('\n'),
      },
    });
    const logger = memoryLogger();
    const start = () =>
      startManager(
        { dir: join(dir, 'fleets'), state: join(dir, 'state', 'state.db'), color: false },
        { listen: '127.0.0.1:0', graceMs: 500, intervalMs: 300, heartbeatIntervalMs: 200, logger },
      );
    let manager: Manager = await start();
    t.teardown(() => manager.stop().catch(() => undefined));
    const lab = async (): Promise<FleetStatus> => (await manager.daemon.status()).fleets[0] as FleetStatus;
    const inService = async () => {
      const f = await lab();
      const i = f.instances[0];
      return i?.state === 'ready' && i.health_failures === 0 && f.slots?.idle === 1 ? f : undefined;
    };
    /** Out of service, and a trial to bring it back has failed. */
    const tried = async () => {
      const i = (await lab()).instances[0];
      return i?.out_of_service?.last_error ? i : undefined;
    };
    await until('the host in service', inService, 20_000);

    // 1. The host dies while idle: its heartbeats fail, it is taken out of service.
    sshd.crash();
    const out = await until('out of service, with the reason', tried, 20_000);
    t.match(out.out_of_service, { reason: /unhealthy/ });
    t.equal((await lab()).slots?.idle, 0, 'no slot offered meanwhile');
    await sshd.restart();
    await until('back in service after it answers again', inService, 20_000);

    // 2. Its connection breaks under a job, then the daemon restarts while the host is down.
    const job = await manager.daemon.slots.acquire('lab');
    sshd.crash();
    await manager.daemon.slots.release(job, { instanceBroken: true });
    await manager.stop();
    manager = await start();
    const held = await until('still out after the restart, and status says why', tried, 20_000);
    t.match(held, { state: 'draining', drain_reason: 'unhealthy', out_of_service: { reason: /unhealthy/ } });
    const queued = manager.daemon.slots.acquire('lab');
    await sshd.restart();
    const assigned = await queued;
    t.equal(assigned.instanceId, id, 'the queued job got the host once it answered');
    const f = await lab();
    t.match(
      f.instances[0],
      { state: /^(ready|in_use)$/, health_failures: 0 },
      'back in service, failures reset',
    );
    t.equal(f.instances[0]?.out_of_service, undefined, 'status no longer reports it out');
    await manager.daemon.slots.release(assigned);
    t.ok(
      logger.lines.some((l) => l.event === 'recovered' && l.instance === id),
      'the return is logged',
    );
  });
}
