/**
 * The coordinator's artifact endpoints (docs/gitlab-job-api.md §6), strict the way GitLab is:
 * uploads need the job's own token while it runs, the multipart body is parsed as it arrives and
 * written to disk (never held in memory), an archive over the size limit is refused with 413, a
 * dotenv report's variables are kept for dependent jobs. Downloads need the token of a running
 * job; with object storage on they answer `direct_download=true` with a 302 to a second loopback
 * server holding a signed URL, which records what it was sent (a job token must never reach it).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import busboy from 'busboy';
import { sendJson, sendStatus } from './http-util.js';
import { isProcessing, type JobStore } from './job-store.js';

export interface ArtifactRoutesOptions {
  store: JobStore;
  /** Where uploads are kept. */
  dir: string;
  /** GitLab's `max_artifacts_size`: larger uploads get 413. */
  maxBytes: number;
  /** Serve downloads from a second server through a 302, as object storage does. */
  objectStorage: boolean;
}

/** One request the object storage server received. */
export interface ObjectStorageRequest {
  url: string;
  headers: Record<string, string | string[] | undefined>;
  status: number;
}

export class ArtifactRoutes {
  private storage: Server | undefined;
  private storageUrl = '';
  private readonly signed = new Map<string, string>(); // key → file path
  readonly storageRequests: ObjectStorageRequest[] = [];
  private uploads = 0;

  constructor(private readonly opts: ArtifactRoutesOptions) {}

  async start(host: string): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true });
    if (!this.opts.objectStorage) return;
    const server = createServer((req, res) => this.serveObject(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve());
    });
    const a = server.address() as AddressInfo;
    this.storageUrl = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    this.storage = server;
  }

  async close(): Promise<void> {
    if (this.storage) {
      this.storage.closeAllConnections();
      await new Promise<void>((resolve) => this.storage!.close(() => resolve()));
    }
    await rm(this.opts.dir, { recursive: true, force: true });
  }

  /** `POST /jobs/:id/artifacts`; `authorized` has already checked the job token. */
  async upload(req: IncomingMessage, res: ServerResponse, id: number, url: URL): Promise<void> {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.opts.maxBytes + 64 * 1024) {
      return this.refuseTooLarge(req, res);
    }
    const path = join(this.opts.dir, `job-${id}-${++this.uploads}`);
    let file: { filename: string; size: number } | undefined;
    let tooLarge = false;
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: req.headers, limits: { files: 1, fileSize: this.opts.maxBytes } });
    } catch {
      return sendJson(res, 400, { message: '400 Bad request - not multipart' });
    }
    const written: Promise<void>[] = [];
    parser.on('file', (field, stream, info) => {
      if (field !== 'file') {
        stream.resume();
        return;
      }
      const entry = { filename: info.filename ?? 'file', size: 0 };
      file = entry;
      stream.on('data', (c: Buffer) => (entry.size += c.length));
      stream.on('limit', () => (tooLarge = true));
      written.push(pipeline(stream, createWriteStream(path)));
    });
    try {
      await pipeline(req, parser);
      await Promise.all(written);
    } catch {
      await rm(path, { force: true });
      if (!res.headersSent) sendJson(res, 400, { message: '400 Bad request - broken multipart body' });
      return;
    }
    if (tooLarge) {
      await rm(path, { force: true });
      return sendJson(res, 413, { message: '413 Request Entity Too Large' });
    }
    if (!file) return sendJson(res, 400, { message: '400 Bad request - file is missing' });
    const query = Object.fromEntries(url.searchParams);
    const dotenv =
      query['artifact_type'] === 'dotenv' ? await readDotenv(path, query['artifact_format']) : undefined;
    if (dotenv === null) {
      await rm(path, { force: true });
      return sendJson(res, 400, { message: '400 Bad request - invalid dotenv report' });
    }
    this.opts.store.addArtifact(
      id,
      { filename: file.filename, path, size: (await stat(path)).size, query },
      dotenv,
    );
    sendStatus(res, 201);
  }

  /** `GET /jobs/:id/artifacts`: the archive, or a 302 to object storage with `direct_download=true`. */
  async download(req: IncomingMessage, res: ServerResponse, id: number, url: URL): Promise<void> {
    const token = header(req, 'job-token');
    const caller = token ? this.opts.store.byToken(token) : undefined;
    if (!caller || !isProcessing(caller.state)) return sendJson(res, 403, { message: '403 Forbidden' });
    const artifact = this.opts.store.archive(id);
    if (!artifact) return sendJson(res, 404, { message: '404 Not Found' });
    if (this.storage && url.searchParams.get('direct_download') === 'true') {
      const key = randomBytes(16).toString('hex');
      this.signed.set(key, artifact.path);
      res.writeHead(302, {
        Location: `${this.storageUrl}/bucket/${id}/${artifact.filename}?X-Signature=${key}`,
      });
      res.end();
      return;
    }
    await sendFile(res, artifact.path, artifact.size);
  }

  private serveObject(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://storage');
    const path = this.signed.get(url.searchParams.get('X-Signature') ?? '');
    res.on('finish', () =>
      this.storageRequests.push({ url: req.url ?? '', headers: { ...req.headers }, status: res.statusCode }),
    );
    if (!path) {
      res.writeHead(403, { 'Content-Type': 'application/xml' });
      res.end('<Error><Code>AccessDenied</Code></Error>');
      return;
    }
    void stat(path).then(
      (s) => sendFile(res, path, s.size),
      () => {
        res.writeHead(404);
        res.end();
      },
    );
  }

  private refuseTooLarge(req: IncomingMessage, res: ServerResponse): void {
    sendJson(res, 413, { message: '413 Request Entity Too Large' }, { Connection: 'close' });
    req.resume();
  }
}

async function sendFile(res: ServerResponse, path: string, size: number): Promise<void> {
  res.writeHead(200, { 'Content-Type': 'application/zip', 'Content-Length': size });
  await pipeline(createReadStream(path), res).catch(() => res.destroy());
}

/** `KEY=VALUE` lines of a gzip dotenv report; null when a line is not one (GitLab rejects the report). */
async function readDotenv(path: string, format: string | undefined): Promise<Record<string, string> | null> {
  const chunks: Buffer[] = [];
  const source = createReadStream(path);
  const stream = format === 'gzip' ? source.pipe(createGunzip()) : source;
  try {
    for await (const c of stream) chunks.push(c as Buffer);
  } catch {
    return null;
  }
  const vars: Record<string, string> = {};
  for (const line of Buffer.concat(chunks).toString('utf8').split('\n')) {
    if (line.trim() === '') continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.replace(/\r$/, ''));
    if (!m) return null;
    vars[m[1] as string] = (m[2] as string).replace(/^(["'])(.*)\1$/, '$2');
  }
  return vars;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
