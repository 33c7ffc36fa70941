/**
 * Closing the SSH pool while a host is frozen (SIGSTOP: TCP still open, nothing answers) must
 * release every socket at once, so `runfleet watch` exits after its grace instead of waiting for
 * keepalives to give up. Also fails the commands still running on that host.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { KnownHostsFile } from '../../../src/runtime/connectors/known-hosts.js';
import { SshConnectorPool } from '../../../src/runtime/connectors/ssh-connector.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { openTcpPeers } from '../../helpers/topology/sockets.js';
import { startSshd } from '../../helpers/topology/sshd.js';

if (requireOrSkip(t, 'sshd', 'ssh-keygen')) {
  t.test('close() leaves no socket to a frozen host and fails its commands', async (t) => {
    const stateDir = mkdtempSync(join(tmpdir(), 'rf-ssh-state-'));
    t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
    const sshd = await startSshd(t);
    const peer = `${sshd.host}:${sshd.port}`;
    const pool = new SshConnectorPool({ knownHosts: new KnownHostsFile(join(stateDir, 'kh.json')) });
    const target = { host: sshd.host, port: sshd.port, username: sshd.username, privateKey: sshd.privateKey };
    t.equal((await pool.get(target).exec('true')).exitCode, 0);
    const running = pool.get(target).exec('sleep 30');
    const outcome = running.then(
      () => 'resolved',
      () => 'rejected',
    );
    t.ok(openTcpPeers().includes(peer), 'connected');

    sshd.freeze();
    await pool.close();
    t.notOk(openTcpPeers().includes(peer), 'no socket to the frozen host is left open');
    t.equal(await outcome, 'rejected', 'the command on it fails instead of hanging');
    sshd.thaw();
  });
}
