/**
 * The SSH connector against a real sshd on loopback: exec with stdin/env/cwd, exit codes, one
 * pooled connection, host-key pinning (a changed key is refused), cancel that leaves no process,
 * stream-local forwarding to a Unix socket, and a connection lost mid-command.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { KnownHostsFile } from '../../../src/runtime/connectors/known-hosts.js';
import { SshConnectorPool } from '../../../src/runtime/connectors/ssh-connector.js';
import { systemTime } from '../../../src/util/time.js';
import { processesMatching, waitFor } from '../../helpers/topology/processes.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startSshd } from '../../helpers/topology/sshd.js';

if (requireOrSkip(t, 'sshd', 'ssh-keygen')) {
  const stateDir = mkdtempSync(join(tmpdir(), 'rf-ssh-state-'));
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const knownHosts = new KnownHostsFile(join(stateDir, 'known_hosts.json'));
  const sshd = await startSshd(t);
  const pool = new SshConnectorPool({ knownHosts, killGraceMs: 500, connectTimeoutMs: 3000 });
  t.teardown(() => pool.close());
  const target = { host: sshd.host, port: sshd.port, username: sshd.username, privateKey: sshd.privateKey };

  const run = async (
    command: string,
    opts: { stdin?: string; env?: Record<string, string>; cwd?: string } = {},
  ) => {
    let out = '';
    let err = '';
    const res = await pool.get(target).exec(command, {
      ...opts,
      onStdout: (c) => (out += c.toString()),
      onStderr: (c) => (err += c.toString()),
    });
    return { ...res, out, err };
  };

  t.test(
    'pinned per instance: a removed instance is forgotten, so its address can serve a new one',
    async (t) => {
      await pool.get(target).exec('true'); // pins host:port
      const pinAs = `i-old@${sshd.host}:${sshd.port}`;
      const r = await pool.get({ ...target, pinAs }).exec('true');
      t.equal(r.exitCode, 0);
      t.ok(await knownHosts.pinned(pinAs), 'pinned under the instance id');
      await pool.forgetInstance('i-old');
      t.equal(await knownHosts.pinned(pinAs), undefined, 'forgotten with the instance');
      t.ok(await knownHosts.pinned(`${sshd.host}:${sshd.port}`), 'other pins stay');
    },
  );

  t.test('exec: stdout, stderr, exit code, stdin, env, cwd', async (t) => {
    const r = await run('echo out; echo err >&2; exit 3');
    t.equal(r.exitCode, 3);
    t.equal(r.out, 'out\n', 'the pid marker line is not part of the output');
    t.equal(r.err, 'err\n');
    const s = await run('cat', { stdin: 'line 1\nline 2\n' });
    t.equal(s.out, 'line 1\nline 2\n');
    t.equal(s.exitCode, 0);
    const e = await run('printf %s "$WEIRD"; pwd', { env: { WEIRD: `a'b"c$d\\e` }, cwd: '/tmp' });
    t.equal(e.out, `a'b"c$d\\e/tmp\n`);
  });

  t.test('one pooled connection serves concurrent commands', async (t) => {
    t.equal(pool.get(target), pool.get(target), 'same connector per host:port');
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => run(`echo ${i} "$SSH_CONNECTION"`)),
    );
    t.same(
      results.map((r) => r.out.split(' ')[0]),
      ['0', '1', '2', '3', '4', '5', '6', '7'],
    );
    // sshd names each command's connection (client address and port) in SSH_CONNECTION: eight
    // commands over one connection all name the same one. Counts only this test's connection.
    const connections = new Set(results.map((r) => r.out.trim().split(' ').slice(1, 3).join(':')));
    t.equal(connections.size, 1, `one connection (${[...connections].join(', ')})`);
  });

  t.test('cancel kills the whole remote process tree', async (t) => {
    const marker = `sleep 3${Math.floor(Math.random() * 900) + 100}.${process.pid}`; // unique to this process
    const ac = new AbortController();
    // A subshell tree with a background child and a child that ignores TERM.
    const pr = pool
      .get(target)
      .exec(`sh -c '${marker} & trap "" TERM; ${marker}; wait' & ${marker}; wait`, { signal: ac.signal });
    t.ok(await waitFor(() => processesMatching(marker).length >= 4, 3000), 'tree running');
    const started = Date.now();
    ac.abort();
    const res = await pr;
    t.equal(res.aborted, true);
    // Its commands sleep for about an hour and one ignores TERM: returning at all means the
    // KILL after the grace ended the tree; how soon depends on the machine's load (a figure).
    t.comment(`returned ${Date.now() - started} ms after the abort (kill grace 500 ms)`);
    t.ok(
      await waitFor(() => processesMatching(marker).length === 0, 2000),
      'no process left on the instance',
    );
  });

  t.test('openUnixStream reaches a socket on the instance', async (t) => {
    const sock = join(stateDir, 'echo.sock');
    const server = createServer((c) => c.pipe(c));
    await new Promise<void>((r) => server.listen(sock, r));
    t.teardown(() => new Promise<void>((r) => server.close(() => r())));
    const stream = await pool.get(target).openUnixStream(sock);
    const echoed = await new Promise<string>((resolve) => {
      stream.once('data', (d: Buffer) => resolve(d.toString()));
      stream.write('ping');
    });
    t.equal(echoed, 'ping');
    stream.destroy();
    await t.rejects(pool.get(target).openUnixStream(join(stateDir, 'missing.sock')), { code: 'SSH_CONNECT' });
  });

  t.test('host key pinned on first contact, a different key is refused', async (t) => {
    const pinned = await knownHosts.pinned(`${sshd.host}:${sshd.port}`);
    t.match(pinned, /^SHA256:/);
    await pool.close();
    await sshd.restartWithNewHostKey();
    const err = await pool
      .get(target)
      .exec('true')
      .catch((e: unknown) => e);
    t.match(err, { code: 'SSH_HOSTKEY', hint: /known_hosts\.json/ });
    t.notMatch(String((err as Error).message), /BEGIN|PRIVATE/, 'no key material in the message');
    t.equal(await knownHosts.pinned(`${sshd.host}:${sshd.port}`), pinned, 'pin unchanged');
    await knownHosts.forget(`${sshd.host}:${sshd.port}`);
    await pool.close();
    const ok = await run('echo again');
    t.equal(ok.out, 'again\n', 'after forget, the new key is pinned and accepted');
  });

  t.test('unreachable instance is SSH_CONNECT', async (t) => {
    const other = new SshConnectorPool({ knownHosts, connectTimeoutMs: 1000, connectRetries: 1 });
    t.teardown(() => other.close());
    await t.rejects(other.get({ ...target, host: '127.0.0.254', port: 2 }).exec('true'), {
      code: 'SSH_CONNECT',
    });
  });

  t.test('a refused address is not dialled again: nothing listens there (the instance died)', async (t) => {
    // A port that was just free: bound, then closed.
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const backoffs: number[] = [];
    const time = { ...systemTime, sleep: async (ms: number) => void backoffs.push(ms) };
    const other = new SshConnectorPool({ knownHosts, connectTimeoutMs: 1000, time });
    t.teardown(() => other.close());
    await t.rejects(other.get({ ...target, host: '127.0.0.1', port }).exec('true'), {
      code: 'SSH_CONNECT',
      message: /ECONNREFUSED/,
    });
    t.same(backoffs, [], 'failed at once, without a backoff (the default retries are for passing failures)');
  });

  t.test('instance dying mid-command rejects with SSH_CONNECT', async (t) => {
    const pr = pool.get(target).exec('sleep 30');
    await new Promise((r) => setTimeout(r, 300));
    sshd.crash();
    await t.rejects(pr, { code: 'SSH_CONNECT' });
  });
}
