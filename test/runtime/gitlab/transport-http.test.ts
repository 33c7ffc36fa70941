import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transport } from '../../../src/runtime/gitlab/transport.js';
import { missingComponent } from '../../helpers/topology/require-or-skip.js';

// The transport's own HTTP path (undici's Pool), against real servers on loopback.

const SECRET = 'glrt-secret-token';

async function listen(server: Server, host = '127.0.0.1'): Promise<string> {
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  const port = (server.address() as AddressInfo).port;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}/api/v4/`;
}

function transport(t: Test, baseUrl: string): Transport {
  const tr = new Transport({ baseUrl, userAgent: 'runfleet-test', secrets: () => [SECRET] });
  t.teardown(() => tr.close());
  return tr;
}

t.test('keep-alive reuse, request framing, chunked replies, Connection: close, bad headers', async (t) => {
  const seen: {
    method?: string;
    url?: string;
    headers: IncomingMessage['headers'];
    body: string;
    socket: Socket;
  }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
        socket: req.socket,
      });
      if (req.url?.endsWith('/close')) res.setHeader('Connection', 'close');
      // No Content-Length: node:http sends it chunked.
      res.writeHead(201, { 'Content-Type': 'application/json', 'X-A': 'b', 'Set-Cookie': ['c=1', 'd=2'] });
      res.write('{"id":');
      res.end(`${seen.length}}`);
    });
  });
  t.teardown(() => server.close());
  const base = await listen(server);
  const tr = transport(t, base);

  const first = await tr.send({
    method: 'POST',
    path: 'jobs/request?x=1',
    headers: { 'RUNNER-TOKEN': SECRET },
    json: { token: 'é' },
    expectJson: true,
    timeoutMs: 5000,
  });
  t.equal(first.status, 201);
  t.equal(first.headers.get('X-A'), 'b', 'headers are looked up case-insensitively');
  t.equal(first.headers.get('set-cookie'), 'c=1, d=2', 'repeated headers joined');
  t.equal(first.headers.get('x-none'), null);
  t.equal(first.text, '{"id":1}');
  t.equal(seen[0]?.url, '/api/v4/jobs/request?x=1');
  t.equal(seen[0]?.headers['host'], new URL(base).host);
  t.equal(seen[0]?.headers['runner-token'], SECRET);
  t.equal(seen[0]?.headers['content-type'], 'application/json');
  t.equal(seen[0]?.headers['accept'], 'application/json');
  t.equal(seen[0]?.headers['user-agent'], 'runfleet-test');
  t.match(seen[0]?.headers['x-request-id'], /^[0-9a-f]{32}$/);
  t.equal(seen[0]?.headers['content-length'], String(Buffer.byteLength('{"token":"é"}')));
  t.equal(seen[0]?.body, '{"token":"é"}');

  const second = await tr.send({ method: 'PUT', path: 'b', timeoutMs: 5000 });
  t.equal(second.text, '{"id":2}');
  t.equal(seen[1]?.headers['content-length'], '0', 'a PUT without a body says so');
  // Back-to-back requests may find the first connection not yet back in undici's pool; a third
  // connection for sequential requests would mean no reuse at all.
  for (const path of ['c', 'd', 'e']) await tr.send({ method: 'PUT', path, timeoutMs: 5000 });
  t.ok(new Set(seen.map((s) => s.socket)).size <= 2, 'idle connections are reused');

  await tr.send({ method: 'PUT', path: 'close', timeoutMs: 5000 });
  const closed = seen[5]!.socket;
  await t.resolveMatch(tr.send({ method: 'PUT', path: 'g', timeoutMs: 5000 }), { text: '{"id":7}' });
  t.not(seen[6]?.socket, closed, 'Connection: close: that connection is not used again');

  const both = await Promise.all([
    tr.send({ method: 'PUT', path: 'h', timeoutMs: 5000 }),
    tr.send({ method: 'PUT', path: 'i', timeoutMs: 5000 }),
  ]);
  t.same(
    both.map((r) => r.status),
    [201, 201],
  );
  t.not(seen[7]?.socket, seen[8]?.socket, 'requests at once get a connection each');

  await t.rejects(
    tr.send({ method: 'PUT', path: 'x', headers: { 'X-Bad': `${SECRET}\r\nInjected: 1` }, timeoutMs: 5000 }),
    { code: 'GITLAB', retryable: true },
    'a header that would break the framing is refused',
  );
  t.equal(seen.length, 9, 'and never sent');
});

t.test('a connection that ends before the reply is ECONNRESET; the next request reconnects', async (t) => {
  let connections = 0;
  const server = createTcpServer((sock) => {
    connections++;
    sock.once('data', () => {
      if (connections === 1) return void sock.destroy();
      sock.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
  });
  t.teardown(() => server.close());
  const tr = transport(t, await listen(server));
  await t.rejects(tr.send({ method: 'PUT', path: `jobs/1?token=${SECRET}`, timeoutMs: 5000 }), {
    code: 'GITLAB',
    retryable: true,
    message: 'PUT jobs/1 failed: ECONNRESET',
  });
  const r = await tr.send({ method: 'PUT', path: 'jobs/1', timeoutMs: 5000 });
  t.equal(r.text, 'ok');
  t.equal(connections, 2);
});

t.test('refused connections, timeouts and the caller abort', async (t) => {
  const closed = createTcpServer();
  const refusedUrl = await listen(closed);
  await new Promise<void>((r) => closed.close(() => r()));
  await t.rejects(transport(t, refusedUrl).send({ method: 'GET', path: 'a', timeoutMs: 5000 }), {
    code: 'GITLAB',
    message: 'GET a failed: ECONNREFUSED',
  });

  const held: Socket[] = [];
  let got!: () => void;
  const arrived = new Promise<void>((r) => (got = r));
  const silent = createTcpServer((sock) => {
    held.push(sock);
    sock.on('data', () => got());
  });
  t.teardown(() => {
    for (const s of held) s.destroy();
    silent.close();
  });
  const silentUrl = await listen(silent);
  const tr = transport(t, silentUrl);
  await t.rejects(tr.send({ method: 'GET', path: 'slow', timeoutMs: 50 }), {
    code: 'GITLAB',
    message: 'GET slow timed out after 50 ms',
  });

  const ac = new AbortController();
  const reason = new Error('caller gave up');
  const pending = tr.send({ method: 'GET', path: 'slow', timeoutMs: 60_000, signal: ac.signal });
  await arrived;
  ac.abort(reason);
  await t.rejects(pending, reason, 'the caller abort reason, not a GITLAB error');
  await t.rejects(tr.send({ method: 'GET', path: 'slow', timeoutMs: 60_000, signal: ac.signal }), reason);

  // Aborted before the request has a connection: the abort is kept and applied when it gets one.
  const early = new AbortController();
  const fresh = transport(t, silentUrl);
  const queued = fresh.send({ method: 'GET', path: 'slow', timeoutMs: 60_000, signal: early.signal });
  early.abort(reason);
  await t.rejects(queued, reason, 'an abort before the connection ends the request too');
});

t.test('an IPv6 literal host', async (t) => {
  const server = createServer((req, res) => res.end(`v6 ${req.headers.host} ${req.url}`));
  let base: string;
  try {
    base = await listen(server, '::1');
  } catch {
    return missingComponent(t, 'MISSING IPv6 loopback: the IPv6 transport test not run');
  }
  t.teardown(() => server.close());
  const r = await transport(t, base).send({ method: 'GET', path: 'v', timeoutMs: 5000 });
  t.equal(r.text, `v6 ${new URL(base).host} /api/v4/v`);
});

t.test('https verifies the server against Node’s CA store, NODE_EXTRA_CA_CERTS included', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-transport-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
      ],
      { stdio: 'ignore' },
    );
  } catch {
    return missingComponent(t, 'MISSING openssl: the https transport test not run');
  }
  const cert = readFileSync(join(dir, 'cert.pem'));
  const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (req, res) =>
    res.end(`tls ${req.url}`),
  );
  t.teardown(() => server.close());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `https://localhost:${(server.address() as AddressInfo).port}/api/v4/`;
  await t.rejects(transport(t, base).send({ method: 'PUT', path: 'v', timeoutMs: 5000 }), {
    code: 'GITLAB',
    message: 'PUT v failed: DEPTH_ZERO_SELF_SIGNED_CERT',
  });

  // Node reads NODE_EXTRA_CA_CERTS into its CA store at start: a process given the certificate
  // that way trusts the server.
  const script = join(dir, 'send.mjs');
  const transportUrl = new URL('../../../src/runtime/gitlab/transport.js', import.meta.url).href;
  writeFileSync(
    script,
    `const { Transport } = await import(${JSON.stringify(transportUrl)});
const tr = new Transport({ baseUrl: process.argv[2], userAgent: 't', secrets: () => [] });
const r = await tr.send({ method: 'PUT', path: 'v', timeoutMs: 5000 });
tr.close();
process.stdout.write(r.text);`,
  );
  const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', script, base], {
    cwd: process.cwd(),
    env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem'), TS_NODE_TRANSPILE_ONLY: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise((r) => child.on('close', r));
  t.equal(code, 0);
  t.equal(out, 'tls /api/v4/v');
});
