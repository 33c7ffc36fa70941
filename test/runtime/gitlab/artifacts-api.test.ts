/**
 * The artifact endpoints' client against real HTTP servers on loopback: uploads retried on 5xx
 * (six times on 503, three otherwise), moved by 307 to another host, final on 403 / 413, and a body
 * that fails is never retried; downloads follow a 302 to another host without the job token, and
 * 404 is final, 5xx and a refused connection are not, and the body arrives whole.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { ArtifactsApi } from '../../../src/runtime/gitlab/artifacts-api.js';
import { TransferError } from '../../../src/runtime/transfer/index.js';
import { scaledTime } from '../../../src/util/time.js';

interface Seen {
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

async function server(t: Test, answer: (seen: Seen, n: number, res: ServerResponse) => void) {
  const seen: Seen[] = [];
  const s = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const entry = { url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
      seen.push(entry);
      answer(entry, seen.length, res);
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => s.close(() => r())));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, seen };
}

const reply = (res: ServerResponse, status: number, headers: Record<string, string> = {}) => {
  res.writeHead(status, headers);
  res.end(String(status));
};

const api = (base: string) =>
  new ArtifactsApi({
    baseUrl: `${base}/api/v4/`,
    userAgent: 'gitlab-runner test',
    time: scaledTime(0.001),
    scrub: (s) => s.split('glcbt-secret').join('[MASKED]'),
  });

const body = (text: string) => () => ({
  stream: Readable.from([Buffer.from(text)]),
  done: Promise.resolve(),
});

const params = {
  jobId: 7,
  token: 'glcbt-secret',
  filename: 'dist.zip',
  artifactType: 'archive',
  artifactFormat: 'zip',
  expireIn: '1 week',
};

t.test('upload: multipart file part, query, JOB-TOKEN; 503 retried up to six times', async (t) => {
  const s = await server(t, (_seen, n, res) => reply(res, n < 5 ? 503 : 201));
  const retries: string[] = [];
  const res = await api(s.url).upload({
    ...params,
    body: body('PKDATA'),
    onRetry: (_a, why) => retries.push(why),
  });
  t.same(res, { status: 201, statusText: '201 Created', attempts: 5 });
  t.equal(retries.length, 4);
  const last = s.seen.at(-1)!;
  t.equal(last.url, '/api/v4/jobs/7/artifacts?artifact_format=zip&artifact_type=archive&expire_in=1+week');
  t.equal(last.headers['job-token'], 'glcbt-secret');
  t.match(last.headers['content-type'], /^multipart\/form-data; boundary=/);
  t.match(
    last.body,
    /Content-Disposition: form-data; name="file"; filename="dist.zip"\r\n[\s\S]*\r\n\r\nPKDATA\r\n--/,
  );
});

t.test('upload: 500 three times is the end; 403 and 413 at once', async (t) => {
  const s500 = await server(t, (_s, _n, res) => reply(res, 500));
  await t.rejects(api(s500.url).upload({ ...params, body: body('x') }), {
    status: 500,
    message: /upload failed/,
  });
  t.equal(s500.seen.length, 3);
  for (const status of [403, 413]) {
    const s = await server(t, (_s, _n, res) => reply(res, status));
    await t.rejects(api(s.url).upload({ ...params, body: body('x') }), {
      status,
      retryable: false,
      message: /./,
    });
    t.equal(s.seen.length, 1, `${status} is final`);
  }
});

t.test('upload: 307 sends it again to the new host', async (t) => {
  const target = await server(t, (_s, _n, res) => reply(res, 201));
  const first = await server(t, (_s, _n, res) =>
    reply(res, 307, { Location: `${target.url}/somewhere/else` }),
  );
  const res = await api(first.url).upload({ ...params, body: body('moved') });
  t.equal(res.status, 201);
  t.equal(
    target.seen[0]?.url,
    '/api/v4/jobs/7/artifacts?artifact_format=zip&artifact_type=archive&expire_in=1+week',
  );
  t.match(target.seen[0]?.body, 'moved');
});

t.test('upload: a body that fails is the answer, not retried', async (t) => {
  const s = await server(t, (_s, _n, res) => reply(res, 201));
  let made = 0;
  const failing = () => {
    made++;
    const err = new TransferError('tar on the instance failed (exit code 2)');
    const stream = new Readable({ read() {} });
    const done = Promise.reject(err);
    done.catch(() => undefined);
    stream.push(Buffer.from('PK'));
    setImmediate(() => stream.destroy(err));
    stream.on('error', () => undefined);
    return { stream, done };
  };
  await t.rejects(api(s.url).upload({ ...params, body: failing }), { code: 'TRANSFER' });
  t.equal(made, 1, 'not retried');
});

t.test('download: a 302 to object storage is followed without JOB-TOKEN; 404 is final', async (t) => {
  const storage = await server(t, (_s, _n, res) => {
    res.writeHead(200, { 'Content-Length': '3' });
    res.end('zip');
  });
  const gitlab = await server(t, (seen, _n, res) => {
    if (seen.url.startsWith('/api/v4/jobs/9/')) return reply(res, 404);
    reply(res, 302, { Location: `${storage.url}/bucket/obj?X-Signature=abc` });
  });
  const { body: got } = await api(gitlab.url).download(5, 'glcbt-secret');
  const chunks: Buffer[] = [];
  for await (const c of got) chunks.push(c as Buffer);
  t.equal(Buffer.concat(chunks).toString(), 'zip');
  t.equal(gitlab.seen[0]?.url, '/api/v4/jobs/5/artifacts?direct_download=true');
  t.equal(gitlab.seen[0]?.headers['job-token'], 'glcbt-secret', 'GitLab gets the token');
  t.equal(storage.seen[0]?.headers['job-token'], undefined, 'object storage does not');
  await t.rejects(api(gitlab.url).download(9, 'glcbt-secret'), {
    status: 404,
    retryable: false,
    message: /404/,
  });
});

t.test(
  'download: 5xx and a refused connection are retryable; an abort rejects with its reason',
  async (t) => {
    const gitlab = await server(t, (_s, _n, res) => reply(res, 502));
    await t.rejects(api(gitlab.url).download(5, 'glcbt-secret'), {
      status: 502,
      retryable: true,
      message: /502 Bad Gateway/,
    });
    // a port nothing listens on: take one, then free it
    const free = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const port = (s.address() as AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    await t.rejects(api(`http://127.0.0.1:${free}`).download(5, 'glcbt-secret'), {
      retryable: true,
      status: undefined,
      message: /^download failed: .*ECONNREFUSED/,
    });
    const hang = await server(t, () => undefined);
    const stop = new AbortController();
    const pending = api(hang.url).download(5, 'glcbt-secret', stop.signal);
    setTimeout(() => stop.abort(new Error('job canceled')), 50);
    await t.rejects(pending, /job canceled/);
  },
);

t.test('download: the body is the response stream, every byte in order', async (t) => {
  const data = Buffer.alloc(8 * 1024 * 1024);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
  const gitlab = await server(t, (_s, _n, res) => {
    res.writeHead(200, { 'Content-Length': String(data.length) });
    res.end(data);
  });
  const { body: got, size } = await api(gitlab.url).download(5, 'glcbt-secret');
  t.equal(size, data.length, 'size from Content-Length');
  const chunks: Buffer[] = [];
  for await (const c of got) chunks.push(c as Buffer);
  t.ok(Buffer.concat(chunks).equals(data));
});
