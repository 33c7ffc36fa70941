/**
 * sshd dies under a running command (the command lives on, orphaned: without a pty nothing sends
 * it SIGHUP). When the connection to that host comes back, the connector kills what it left behind
 * before anything else runs there, and only that: a process that merely reuses the pid is spared.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { KnownHostsFile } from '../../../src/runtime/connectors/known-hosts.js';
import { SshConnectorPool } from '../../../src/runtime/connectors/ssh-connector.js';
import { processesMatching, waitFor } from '../../helpers/topology/processes.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startSshd } from '../../helpers/topology/sshd.js';

if (requireOrSkip(t, 'sshd', 'ssh-keygen')) {
  t.test('a command orphaned by a dead sshd is killed when the host answers again', async (t) => {
    const stateDir = mkdtempSync(join(tmpdir(), 'rf-ssh-state-'));
    const sleeper = `sleep 41.${process.pid}`;
    t.teardown(() => {
      for (const p of processesMatching(sleeper)) process.kill(p.pid, 'SIGKILL');
      rmSync(stateDir, { recursive: true, force: true });
    });
    const sshd = await startSshd(t);
    const pool = new SshConnectorPool({ knownHosts: new KnownHostsFile(join(stateDir, 'kh.json')) });
    t.teardown(() => pool.close());
    const target = { host: sshd.host, port: sshd.port, username: sshd.username, privateKey: sshd.privateKey };

    const job = pool
      .get(target)
      .exec(sleeper)
      .then(
        () => 'ended',
        (e: Error) => e.message,
      );
    t.ok(await waitFor(() => processesMatching(sleeper).length > 0), 'the job runs');
    sshd.killSshdOnly();
    t.match(await job, /connection lost/, 'the job fails with the connection');
    t.equal(processesMatching(sleeper).length, 1, 'its process lives on, orphaned');

    await sshd.restart();
    t.equal((await pool.get(target).exec('true')).exitCode, 0, 'the host answers again');
    t.ok(
      await waitFor(() => processesMatching(sleeper).length === 0),
      'what the lost connection left running is killed',
    );
  });
}
