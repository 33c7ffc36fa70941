/**
 * A small HTTP/1.1 client for the runner API's requests (`transport.ts`): keep-alive connections
 * (most recently used first), one request per connection at a time, whole bodies in and out.
 *
 * Why not `node:http`: its request and response objects are streams, with header validation,
 * agent bookkeeping and parser callbacks per request, and cost about 270 µs of CPU per request on
 * the project's 2-core bench machine where this costs about 80 µs; a job makes 5 to 6 requests
 * (bench/dispatch, README "Manager CPU per job"). What it needs of HTTP is small: a request head
 * written with its body in one write, and a response framed by Content-Length, chunked transfer
 * coding or the end of the connection. Bodies that stream (artifacts) stay on `node:http`.
 */
import { isIP, connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';

export interface Http1Request {
  method: string;
  /** Path and query, starting with `/`. */
  path: string;
  /** Besides Host, Connection and Content-Length, which are set here. */
  headers: Record<string, string>;
  body?: Uint8Array;
}

export interface Http1Response {
  status: number;
  /** Lower-case names; repeated headers joined with `, `. */
  headers: Map<string, string>;
  body: Buffer;
}

/** An error of the exchange, with a Node-style `code` (`ECONNRESET`, `HPE_…`, a socket's own). */
export class Http1Error extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

const HEAD_END = Buffer.from('\r\n\r\n');
/** Node's default `maxHeaderSize` is 16 KiB; GitLab's replies carry a few hundred bytes. */
const MAX_HEAD_BYTES = 64 * 1024;
/** A chunk-size or trailer line: a hex size with extensions, or one trailer field. */
const MAX_LINE_BYTES = 8 * 1024;
/** What HTTP allows in a request target and in a header value (RFC 9110 §5.5, as Node checks). */
const BAD_PATH = /[^\u0021-\u00ff]/;
const BAD_VALUE = /[^\t\u0020-\u007e\u0080-\u00ff]/;
const BAD_NAME = /[^!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/** The response to one request, parsed from the bytes as they arrive. */
export class ResponseParser {
  private state: 'head' | 'length' | 'size' | 'chunk' | 'chunk-end' | 'trailer' | 'close' | 'done' = 'head';
  /** Bytes of an unfinished head or line, kept for the next push. */
  private carry: Buffer | undefined;
  private status = 0;
  private headers = new Map<string, string>();
  private keepAlive = false;
  private remaining = 0;
  private readonly body: Buffer[] = [];
  /** Bytes received after the end of the response: the connection cannot be reused. */
  extra = 0;

  /** @param method the request's: a reply to HEAD has no body whatever its headers say. */
  constructor(private readonly method: string) {}

  /** Whether the connection may carry another request once the response is complete. */
  get reusable(): boolean {
    return this.state === 'done' && this.keepAlive && this.extra === 0;
  }

  /**
   * Takes the next bytes; returns the response once it is complete.
   * @throws Http1Error(HPE_INVALID) on bytes that are not an HTTP/1.x response
   */
  push(chunk: Buffer): Http1Response | undefined {
    let data = chunk;
    if (this.carry) {
      data = Buffer.concat([this.carry, chunk]);
      this.carry = undefined;
    }
    let pos = 0;
    while (pos < data.length) {
      switch (this.state) {
        case 'head': {
          const end = data.indexOf(HEAD_END, pos);
          if (end < 0) return this.hold(data, pos, MAX_HEAD_BYTES);
          this.readHead(data.toString('latin1', pos, end));
          pos = end + 4;
          break;
        }
        case 'length':
        case 'chunk': {
          const n = Math.min(this.remaining, data.length - pos);
          this.body.push(data.subarray(pos, pos + n));
          pos += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = this.state === 'length' ? 'done' : 'chunk-end';
          break;
        }
        case 'size':
        case 'chunk-end':
        case 'trailer': {
          const nl = data.indexOf(0x0a, pos);
          if (nl < 0) return this.hold(data, pos, MAX_LINE_BYTES);
          this.readLine(data.toString('latin1', pos, nl > pos && data[nl - 1] === 0x0d ? nl - 1 : nl));
          pos = nl + 1;
          break;
        }
        case 'close':
          this.body.push(data.subarray(pos));
          pos = data.length;
          break;
        case 'done':
          this.extra += data.length - pos;
          return undefined;
      }
      if (this.state === 'done') {
        this.extra += data.length - pos;
        return this.response();
      }
    }
    return undefined;
  }

  /** The connection ended: completes a body that runs to the end of the connection. */
  end(): Http1Response | undefined {
    if (this.state !== 'close') return undefined;
    this.state = 'done';
    this.keepAlive = false;
    return this.response();
  }

  private hold(data: Buffer, pos: number, max: number): undefined {
    if (data.length - pos > max)
      throw new Http1Error('response head or line too long', 'HPE_HEADER_OVERFLOW');
    this.carry = Buffer.from(data.subarray(pos));
    return undefined;
  }

  private readHead(head: string): void {
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0] ?? '');
    if (!m) throw new Http1Error('not an HTTP/1.x response', 'HPE_INVALID_CONSTANT');
    const status = Number(m[2]);
    const headers = new Map<string, string>();
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new Http1Error('invalid response header', 'HPE_INVALID_HEADER_TOKEN');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const before = headers.get(name);
      headers.set(name, before === undefined ? value : `${before}, ${value}`);
    }
    // 1xx are interim (100 Continue, 103 Early Hints): the final response follows.
    if (status < 200) {
      if (status === 101) throw new Http1Error('unexpected protocol switch', 'HPE_INVALID_CONSTANT');
      return;
    }
    this.status = status;
    this.headers = headers;
    const connection = (headers.get('connection') ?? '').toLowerCase();
    this.keepAlive = m[1] === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
    const coding = headers.get('transfer-encoding');
    const length = headers.get('content-length');
    if (this.method === 'HEAD' || status === 204 || status === 304) {
      this.state = 'done';
    } else if (coding !== undefined) {
      // Chunked must be the last coding; anything else runs to the end of the connection.
      if (/(?:^|,)\s*chunked\s*$/i.test(coding)) this.state = 'size';
      else this.toClose();
    } else if (length !== undefined) {
      const values = new Set(length.split(',').map((v) => v.trim()));
      const only = [...values][0] ?? '';
      if (values.size !== 1 || !/^\d+$/.test(only))
        throw new Http1Error('invalid Content-Length', 'HPE_INVALID_CONTENT_LENGTH');
      this.remaining = Number(only);
      this.state = this.remaining === 0 ? 'done' : 'length';
    } else {
      this.toClose();
    }
  }

  private toClose(): void {
    this.state = 'close';
    this.keepAlive = false;
  }

  private readLine(line: string): void {
    if (this.state === 'chunk-end') {
      if (line !== '') throw new Http1Error('invalid chunk end', 'HPE_INVALID_CHUNK_SIZE');
      this.state = 'size';
    } else if (this.state === 'size') {
      const size = line.split(';', 1)[0]!.trim();
      if (!/^[0-9a-fA-F]{1,12}$/.test(size))
        throw new Http1Error('invalid chunk size', 'HPE_INVALID_CHUNK_SIZE');
      this.remaining = parseInt(size, 16);
      this.state = this.remaining === 0 ? 'trailer' : 'chunk';
    } else if (line === '') {
      // Trailer fields are read and dropped: nothing GitLab sends is needed from them.
      this.state = 'done';
    }
  }

  private response(): Http1Response {
    const body = this.body.length === 1 ? this.body[0]! : Buffer.concat(this.body);
    return { status: this.status, headers: this.headers, body };
  }
}

/** One connection and the request it carries now. */
interface Connection {
  socket: Socket;
  /** The exchange in progress; undefined while the connection is idle. */
  exchange?: Exchange;
  /** Idle connections are not used after this (`Keep-Alive: timeout=`); ms since the epoch. */
  usableUntil: number;
}

interface Exchange {
  parser: ResponseParser;
  resolve(res: Http1Response): void;
  reject(err: Error): void;
}

/** Keep-alive connections to one origin. Requests wait for nothing: a new connection when none is idle. */
export class Http1Client {
  private readonly idle: Connection[] = [];
  private readonly hostHeader: string;
  private readonly hostname: string;
  private readonly port: number;
  private readonly tls: boolean;
  private closed = false;

  /**
   * @param origin `http:` or `https:` URL; only its scheme, host and port are used.
   * @param opts.ca certificates to trust instead of Node's (tests); @default Node's CA store
   */
  constructor(
    origin: URL,
    private readonly opts: { ca?: string | Buffer } = {},
  ) {
    this.tls = origin.protocol === 'https:';
    this.hostHeader = origin.host;
    this.hostname = origin.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = Number(origin.port) || (this.tls ? 443 : 80);
  }

  /**
   * Sends one request and resolves with the whole response. Rejects with the socket's error, or
   * Http1Error(ECONNRESET, "socket hang up") when the connection ends before the response does.
   * @throws Http1Error(ERR_INVALID_CHAR) at once for a path or header that would break the framing
   */
  request(req: Http1Request): { response: Promise<Http1Response>; destroy(): void } {
    const head = this.head(req);
    const conn = this.take();
    const response = new Promise<Http1Response>((resolve, reject) => {
      conn.exchange = { parser: new ResponseParser(req.method), resolve, reject };
    });
    const socket = conn.socket;
    socket.ref();
    if (req.body && req.body.byteLength > 0) {
      socket.cork();
      socket.write(head, 'latin1');
      socket.write(req.body);
      socket.uncork();
    } else {
      socket.write(head, 'latin1');
    }
    return { response, destroy: () => socket.destroy() };
  }

  /** Closes idle connections; those carrying a request close when it ends. */
  close(): void {
    this.closed = true;
    for (const conn of this.idle.splice(0)) conn.socket.destroy();
  }

  private head(req: Http1Request): string {
    if (BAD_PATH.test(req.path) || !req.path.startsWith('/'))
      throw new Http1Error(`invalid request path ${JSON.stringify(req.path)}`, 'ERR_INVALID_CHAR');
    let head = `${req.method} ${req.path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\n`;
    for (const name in req.headers) {
      const value = req.headers[name]!;
      if (BAD_NAME.test(name) || BAD_VALUE.test(value))
        throw new Http1Error(`invalid character in header ${JSON.stringify(name)}`, 'ERR_INVALID_CHAR');
      head += `${name}: ${value}\r\n`;
    }
    const length = req.body?.byteLength ?? 0;
    if (length > 0 || req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH')
      head += `Content-Length: ${length}\r\n`;
    return head + 'Connection: keep-alive\r\n\r\n';
  }

  /** The most recently used idle connection that is still open, else a new one. */
  private take(): Connection {
    const now = Date.now();
    for (let conn = this.idle.pop(); conn; conn = this.idle.pop()) {
      if (!conn.socket.destroyed && conn.socket.writable && now < conn.usableUntil) return conn;
      conn.socket.destroy();
    }
    return this.open();
  }

  private open(): Connection {
    const socket = this.tls
      ? connectTls({
          host: this.hostname,
          port: this.port,
          ...(isIP(this.hostname) ? {} : { servername: this.hostname }),
          ...(this.opts.ca ? { ca: this.opts.ca } : {}),
        })
      : connectTcp({ host: this.hostname, port: this.port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 1000);
    const conn: Connection = { socket, usableUntil: Infinity };
    const fail = (err: Error): void => {
      const ex = conn.exchange;
      conn.exchange = undefined;
      this.drop(conn);
      ex?.reject(err);
    };
    socket.on('data', (chunk: Buffer) => {
      const ex = conn.exchange;
      if (!ex) return void socket.destroy();
      let res: Http1Response | undefined;
      try {
        res = ex.parser.push(chunk);
      } catch (e) {
        socket.destroy();
        return fail(e as Error);
      }
      if (res) this.finish(conn, ex, res);
    });
    socket.on('error', fail);
    socket.on('close', () => {
      const ex = conn.exchange;
      const res = ex?.parser.end();
      if (ex && res) return this.finish(conn, ex, res);
      fail(new Http1Error('socket hang up', 'ECONNRESET'));
    });
    return conn;
  }

  private finish(conn: Connection, ex: Exchange, res: Http1Response): void {
    conn.exchange = undefined;
    if (ex.parser.reusable && !this.closed && !conn.socket.destroyed) {
      // As Node's agent reads it: the server closes idle connections after `timeout`; stop using
      // this one a second before, so a request never meets a connection being closed.
      const hint = /(?:^|,)\s*timeout=(\d+)/i.exec(res.headers.get('keep-alive') ?? '')?.[1];
      conn.usableUntil = hint === undefined ? Infinity : Date.now() + Number(hint) * 1000 - 1000;
      conn.socket.unref();
      this.idle.push(conn);
    } else {
      conn.socket.destroy();
    }
    ex.resolve(res);
  }

  private drop(conn: Connection): void {
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
  }
}
