/** The local connector with real processes: output, exit codes, env isolation, tree kill on abort. */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { LocalConnector } from '../../../src/runtime/connectors/local-connector.js';
import { processesMatching, waitFor } from '../../helpers/topology/processes.js';

const root = mkdtempSync(join(tmpdir(), 'rf-local-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const workdir = join(root, 'local', 'fleet', 'local-1a2b', 'work');
const connector = new LocalConnector({ workdir, killGraceMs: 300 });
t.teardown(() => connector.close());

async function run(
  command: string,
  opts: { stdin?: string; env?: Record<string, string>; signal?: AbortSignal } = {},
) {
  let out = '';
  let err = '';
  const res = await connector.exec(command, {
    ...opts,
    onStdout: (c) => (out += c.toString()),
    onStderr: (c) => (err += c.toString()),
  });
  return { ...res, out, err };
}

t.test('runs in the sandbox with stdin, env and exit code', async (t) => {
  const r = await run('pwd; cat; echo "$FOO" >&2; exit 7', { stdin: 'in\n', env: { FOO: 'bar' } });
  t.equal(r.out, `${workdir}\nin\n`);
  t.equal(r.err, 'bar\n');
  t.equal(r.exitCode, 7);
});

t.test('the manager environment does not leak into jobs', async (t) => {
  process.env.RUNFLEET_TEST_SECRET = 'leak';
  t.teardown(() => delete process.env.RUNFLEET_TEST_SECRET);
  const r = await run('echo "[$RUNFLEET_TEST_SECRET]"');
  t.equal(r.out, '[]\n');
});

t.test('abort kills the whole process tree, even a child ignoring TERM', async (t) => {
  const marker = `sleep 4${Math.floor(Math.random() * 900) + 100}.${process.pid}`; // unique to this process
  const ac = new AbortController();
  const p = run(`sh -c 'trap "" TERM; ${marker}' & ${marker} & wait`, { signal: ac.signal });
  t.ok(await waitFor(() => processesMatching(marker).length >= 2, 3000), 'tree running');
  ac.abort();
  const r = await p;
  t.equal(r.aborted, true);
  t.equal(r.exitCode, null);
  t.ok(await waitFor(() => processesMatching(marker).length === 0, 2000), 'no process left');
});

t.test('background processes left by a finished command are killed', async (t) => {
  const marker = `sleep 5${Math.floor(Math.random() * 900) + 100}.${process.pid}`; // unique to this process
  const r = await run(`${marker} >/dev/null 2>&1 & echo started`);
  t.equal(r.exitCode, 0);
  t.ok(await waitFor(() => processesMatching(marker).length === 0, 2000), 'no leftover');
});

t.test('openUnixStream connects to a local socket', async (t) => {
  const sock = join(root, 's.sock');
  const server = createServer((c) => c.end('hello'));
  await new Promise<void>((r) => server.listen(sock, r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const s = await connector.openUnixStream(sock);
  const got = await new Promise<string>((r) => s.once('data', (d: Buffer) => r(d.toString())));
  t.equal(got, 'hello');
  s.destroy();
  await t.rejects(connector.openUnixStream(join(root, 'none.sock')), { code: 'SSH_CONNECT' });
});

t.test('openTcpStream connects to a TCP port; a closed one is SSH_CONNECT', async (t) => {
  const server = createServer((c) => c.end('tcp hello'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const { port } = server.address() as { port: number };
  const s = await connector.openTcpStream('127.0.0.1', port);
  const got = await new Promise<string>((r) => s.once('data', (d: Buffer) => r(d.toString())));
  t.equal(got, 'tcp hello');
  s.destroy();
  // Port 9 (discard) is closed on loopback here: the connection is refused.
  await t.rejects(connector.openTcpStream('127.0.0.1', 9), { code: 'SSH_CONNECT' });
});
