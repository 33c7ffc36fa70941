/**
 * Session limits against a real sshd at OpenSSH's default `MaxSessions 10`: more commands at once
 * than one connection may hold all run, whether the connector knows the limit (its default) or
 * is told a higher one and learns the real one from the server's refusal.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { KnownHostsFile } from '../../../src/runtime/connectors/known-hosts.js';
import { SshConnector } from '../../../src/runtime/connectors/ssh-connector.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startSshd } from '../../helpers/topology/sshd.js';

if (requireOrSkip(t, 'sshd', 'ssh-keygen')) {
  const stateDir = mkdtempSync(join(tmpdir(), 'rf-ssh-sessions-'));
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const knownHosts = new KnownHostsFile(join(stateDir, 'known_hosts.json'));
  const sshd = await startSshd(t, { maxSessions: 10 });
  const target = { host: sshd.host, port: sshd.port, username: sshd.username, privateKey: sshd.privateKey };

  const burst = async (connector: SshConnector, n: number) => {
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => {
        let out = '';
        return connector
          .exec(`sleep 0.5; echo ok-${i}`, { onStdout: (c) => (out += c.toString()) })
          .then((r) => ({ code: r.exitCode, out }));
      }),
    );
    return results;
  };

  t.test('25 commands at once with the default limit: every one runs, on extra connections', async (t) => {
    const connector = new SshConnector(target, { knownHosts });
    t.teardown(() => connector.close());
    const results = await burst(connector, 25);
    t.same(
      results.map((r) => r.code),
      Array(25).fill(0),
    );
    t.same(
      results.map((r) => r.out),
      results.map((_, i) => `ok-${i}\n`),
    );
    t.equal(connector.connectionCount, 3, '10 sessions per connection: three connections');
  });

  t.test('a limit set above the server’s: refused opens are retried, no command fails', async (t) => {
    const connector = new SshConnector(target, { knownHosts, maxSessions: 64 });
    t.teardown(() => connector.close());
    const results = await burst(connector, 25);
    t.same(
      results.map((r) => r.code),
      Array(25).fill(0),
    );
    t.ok(connector.connectionCount >= 2, 'the refusal moved sessions to another connection');
    // The learned limit holds: another burst needs no more connections than the first made.
    const before = connector.connectionCount;
    const again = await burst(connector, 20);
    t.same(
      again.map((r) => r.code),
      Array(20).fill(0),
    );
    t.equal(connector.connectionCount, before);
  });
}
