import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Http1Client, ResponseParser } from '../../../src/runtime/gitlab/http1.js';
import { missingComponent } from '../../helpers/topology/require-or-skip.js';

/** Feeds `raw` to a parser one byte at a time: every split of a head, a line or a chunk. */
function byteByByte(method: string, raw: string) {
  const p = new ResponseParser(method);
  const bytes = Buffer.from(raw, 'latin1');
  for (let i = 0; i < bytes.length; i++) {
    const res = p.push(bytes.subarray(i, i + 1));
    if (res) return { res, p, rest: bytes.length - i - 1 };
  }
  return { res: p.end(), p, rest: 0 };
}

t.test('parser: Content-Length, chunked with extensions and trailers, to the end, no body', async (t) => {
  const cl = byteByByte(
    'PUT',
    'HTTP/1.1 202 Accepted\r\nJob-Status: running\r\nContent-Length: 5\r\n\r\nhello',
  );
  t.equal(cl.res?.status, 202);
  t.equal(cl.res?.headers.get('job-status'), 'running');
  t.equal(cl.res?.body.toString(), 'hello');
  t.ok(cl.p.reusable);

  const chunked = byteByByte(
    'POST',
    'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{"id\r\nA\r\n":12345}  \r\n0\r\nX-Trailer: y\r\n\r\n',
  );
  t.equal(chunked.res?.body.toString(), '{"id":12345}  ');
  t.ok(chunked.p.reusable);

  const toClose = new ResponseParser('GET');
  t.equal(toClose.push(Buffer.from('HTTP/1.0 200 OK\r\n\r\npart one, ')), undefined);
  t.equal(toClose.push(Buffer.from('part two')), undefined);
  t.equal(toClose.end()?.body.toString(), 'part one, part two');
  t.notOk(toClose.reusable, 'a body that runs to the end of the connection ends it');

  for (const [method, raw] of [
    ['HEAD', 'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n'],
    ['POST', 'HTTP/1.1 204 No Content\r\nX-GitLab-Last-Update: abc\r\n\r\n'],
  ] as const) {
    const r = new ResponseParser(method).push(Buffer.from(raw));
    t.equal(r?.body.length, 0, `${method}: no body`);
  }
});

t.test('parser: interim 1xx skipped, repeated headers joined, keep-alive rules, bad input', async (t) => {
  const p = new ResponseParser('POST');
  const r = p.push(
    Buffer.from(
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nVia: a\r\nvia: b\r\nContent-Length: 0\r\n\r\n',
    ),
  );
  t.equal(r?.status, 200);
  t.equal(r?.headers.get('via'), 'a, b');

  const close = new ResponseParser('PUT');
  close.push(Buffer.from('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'));
  t.notOk(close.reusable, 'Connection: close');
  const old = new ResponseParser('PUT');
  old.push(Buffer.from('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n'));
  t.notOk(old.reusable, 'HTTP/1.0 without keep-alive');
  const extra = new ResponseParser('PUT');
  extra.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab'));
  t.notOk(extra.reusable, 'more bytes than the response: never reused');

  const premature = new ResponseParser('PUT');
  premature.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
  t.equal(premature.end(), undefined, 'a connection that ends inside a sized body is an error');

  for (const raw of [
    'SSH-2.0-OpenSSH\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    'HTTP/1.1 200 OK\r\nno colon\r\n\r\n',
  ]) {
    t.throws(() => new ResponseParser('GET').push(Buffer.from(raw)), { name: 'Error' }, raw);
  }
  t.throws(() => new ResponseParser('GET').push(Buffer.alloc(70 * 1024, 65)), {
    code: 'HPE_HEADER_OVERFLOW',
  });
});

async function listen(server: Server): Promise<URL> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}

t.test('client: keep-alive reuse, request framing, chunked replies, a server that closes', async (t) => {
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
      if (req.url === '/close') res.setHeader('Connection', 'close');
      // No Content-Length: node:http sends it chunked.
      res.writeHead(201, { 'Content-Type': 'application/json', 'X-A': 'b' });
      res.write('{"id":');
      res.end(`${seen.length}}`);
    });
  });
  t.teardown(() => server.close());
  const url = await listen(server);
  const client = new Http1Client(url);
  t.teardown(() => client.close());

  const body = Buffer.from('{"token":"é"}');
  const first = await client.request({
    method: 'POST',
    path: '/api/v4/jobs/request?x=1',
    headers: { 'RUNNER-TOKEN': 'glrt-abc', 'Content-Type': 'application/json' },
    body,
  }).response;
  t.equal(first.status, 201);
  t.equal(first.headers.get('x-a'), 'b');
  t.equal(first.body.toString(), '{"id":1}');
  t.equal(seen[0]?.url, '/api/v4/jobs/request?x=1');
  t.equal(seen[0]?.headers['host'], url.host);
  t.equal(seen[0]?.headers['runner-token'], 'glrt-abc');
  t.equal(seen[0]?.headers['content-length'], String(body.length));
  t.equal(seen[0]?.body, '{"token":"é"}');

  const second = await client.request({ method: 'PUT', path: '/b', headers: {} }).response;
  t.equal(second.body.toString(), '{"id":2}');
  t.equal(seen[1]?.headers['content-length'], '0', 'a PUT without a body says so');
  t.equal(seen[1]?.socket, seen[0]?.socket, 'the idle connection is reused');

  await client.request({ method: 'PUT', path: '/close', headers: {} }).response;
  const fourth = await client.request({ method: 'PUT', path: '/d', headers: {} }).response;
  t.equal(fourth.body.toString(), '{"id":4}');
  t.not(seen[3]?.socket, seen[2]?.socket, 'Connection: close: the next request has a new connection');

  const both = await Promise.all([
    client.request({ method: 'PUT', path: '/e', headers: {} }).response,
    client.request({ method: 'PUT', path: '/f', headers: {} }).response,
  ]);
  t.same(
    both.map((r) => r.status),
    [201, 201],
    'requests at once get a connection each',
  );
  t.not(seen[4]?.socket, seen[5]?.socket);

  t.throws(() => client.request({ method: 'PUT', path: '/x', headers: { 'X-Bad': 'a\r\nInjected: 1' } }), {
    code: 'ERR_INVALID_CHAR',
  });
  t.throws(() => client.request({ method: 'PUT', path: '/a b', headers: {} }), { code: 'ERR_INVALID_CHAR' });
});

t.test(
  'client: a connection that ends before the response is a hang-up; the next request reconnects',
  async (t) => {
    let connections = 0;
    const server = createTcpServer((sock) => {
      connections++;
      sock.once('data', () => {
        if (connections === 1) return void sock.destroy();
        sock.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      });
    });
    t.teardown(() => server.close());
    const client = new Http1Client(await listen(server));
    t.teardown(() => client.close());
    await t.rejects(client.request({ method: 'PUT', path: '/', headers: {} }).response, {
      code: 'ECONNRESET',
      message: 'socket hang up',
    });
    const r = await client.request({ method: 'PUT', path: '/', headers: {} }).response;
    t.equal(r.body.toString(), 'ok');
    t.equal(connections, 2);
  },
);

t.test('client: https with a server certificate the process trusts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-http1-'));
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
    return missingComponent(t, 'MISSING openssl: the https test of the HTTP/1.1 client not run');
  }
  const cert = readFileSync(join(dir, 'cert.pem'));
  const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (req, res) =>
    res.end(`tls ${req.url}`),
  );
  t.teardown(() => server.close());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = new URL(`https://localhost:${(server.address() as AddressInfo).port}`);

  const untrusted = new Http1Client(url);
  await t.rejects(untrusted.request({ method: 'PUT', path: '/', headers: {} }).response, {
    code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
  });
  untrusted.close();

  const trusted = new Http1Client(url, { ca: cert });
  t.teardown(() => trusted.close());
  const r = await trusted.request({ method: 'PUT', path: '/v', headers: {} }).response;
  t.equal(r.body.toString(), 'tls /v');
});
