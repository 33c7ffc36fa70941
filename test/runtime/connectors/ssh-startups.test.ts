/**
 * Dials against a real sshd that drops unauthenticated connections beyond `MaxStartups 2`, with one
 * session per connection (`MaxSessions 1`), so every command at once needs a connection of its own:
 * every command runs (dropped dials are retried, none fails), and the connector learns to dial no
 * more than the server lets through.
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
  const stateDir = mkdtempSync(join(tmpdir(), 'rf-ssh-startups-'));
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const knownHosts = new KnownHostsFile(join(stateDir, 'known_hosts.json'));
  const sshd = await startSshd(t, { maxStartups: '2', maxSessions: 1 });
  const target = { host: sshd.host, port: sshd.port, username: sshd.username, privateKey: sshd.privateKey };

  t.test('MaxStartups 2, 8 handshakes wanted at once: 24 commands, every one runs', async (t) => {
    const connector = new SshConnector(target, { knownHosts, maxSessions: 1, maxHandshakes: 8 });
    t.teardown(() => connector.close());
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) => {
        let out = '';
        return connector
          .exec(`sleep 0.2; echo ok-${i}`, { onStdout: (c) => (out += c.toString()) })
          .then((r) => `${r.exitCode} ${out.trim()}`);
      }),
    );
    t.same(
      results,
      results.map((_, i) => `0 ok-${i}`),
    );
    t.ok(connector.handshakeLimit <= 2, `learned to dial at most 2 at once (${connector.handshakeLimit})`);
  });
}
