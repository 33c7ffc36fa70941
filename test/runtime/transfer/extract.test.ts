/**
 * extractZip on real instances (a local sandbox and a real sshd on loopback, with GNU tar and with
 * busybox tar as the instance's `tar`): a zip written by an independent writer (yazl) with the
 * entries the reader handles differently — empty files, explicit and implied directories, modes,
 * symlinks, stored and deflated files larger than one read (1 MiB) and exactly one read long,
 * a deflated file whose inflated size crosses the read size — is unpacked, and the tree on the
 * instance is compared byte for byte, mode for mode.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  createReadStream,
  createWriteStream,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t, { type Test } from 'tap';
import yazl from 'yazl';
import type { Connector } from '../../../src/runtime/connectors/connector.js';
import { KnownHostsFile } from '../../../src/runtime/connectors/known-hosts.js';
import { LocalConnector } from '../../../src/runtime/connectors/local-connector.js';
import { SshConnectorPool } from '../../../src/runtime/connectors/ssh-connector.js';
import {
  DownloadCutShort,
  extractZip,
  extractZipStream,
  type ExtractSummary,
} from '../../../src/runtime/transfer/index.js';
import { findProgram, requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startSshd } from '../../helpers/topology/sshd.js';

const work = mkdtempSync(join(tmpdir(), 'rf-extract-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const MiB = 1024 * 1024;

interface Expected {
  files: Map<string, { sha: string; size: number; mode: number }>;
  dirs: Map<string, number>;
  links: Map<string, string>;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Writes the zip and returns what the unpacked tree must hold. */
async function makeZip(path: string): Promise<Expected> {
  const zip = new yazl.ZipFile();
  const exp: Expected = { files: new Map(), dirs: new Map(), links: new Map() };
  const file = (name: string, data: Buffer, mode: number, compress: boolean, stream = false) => {
    if (stream) {
      // addReadStream: sizes and CRC come after the data (a data descriptor), as from a pipe
      const s = new PassThrough();
      s.end(data);
      zip.addReadStream(s, name, { mode: 0o100000 | mode, compress });
    } else {
      zip.addBuffer(data, name, { mode: 0o100000 | mode, compress });
    }
    exp.files.set(name, { sha: sha(data), size: data.length, mode });
  };
  zip.addEmptyDirectory('out/', { mode: 0o040755 });
  exp.dirs.set('out', 0o755);
  zip.addEmptyDirectory('out/private/', { mode: 0o040700 });
  exp.dirs.set('out/private', 0o700);
  zip.addEmptyDirectory('out/empty-dir/', { mode: 0o040755 });
  exp.dirs.set('out/empty-dir', 0o755);
  file('out/empty.txt', Buffer.alloc(0), 0o644, false);
  file('out/empty-deflated.txt', Buffer.alloc(0), 0o644, true);
  file('out/run.sh', Buffer.from('#!/bin/sh\necho hi\n'), 0o755, true);
  file('out/private/secret', Buffer.from('s3cret\n'), 0o600, false);
  file('out/stored-big.bin', randomBytes(3 * MiB + 12345), 0o644, false, true);
  file('out/exactly-one-read.bin', randomBytes(MiB), 0o644, false);
  // more than the streaming extract holds in memory while it waits for the data descriptor
  file('out/stored-huge.bin', randomBytes(5 * MiB + 7), 0o640, false, true);
  file('out/small-streamed.txt', Buffer.from('sizes after the data\n'), 0o600, true, true);
  file('out/deflated-big.txt', Buffer.from('abcdefgh'.repeat(600_000)), 0o644, true, true);
  file('implied/dir/deep.bin', randomBytes(70_000), 0o640, false);
  exp.dirs.set('implied', -1);
  exp.dirs.set('implied/dir', -1);
  for (let i = 0; i < 50; i++) file(`many/f${i}`, randomBytes(i * 997), 0o644, i % 2 === 0);
  exp.dirs.set('many', -1);
  zip.addBuffer(Buffer.from('run.sh'), 'out/link-to-run', { mode: 0o120777, compress: false });
  exp.links.set('out/link-to-run', 'run.sh');
  zip.addBuffer(Buffer.from('../out/empty-dir'), 'many/link-to-dir', { mode: 0o120777, compress: false });
  exp.links.set('many/link-to-dir', '../out/empty-dir');
  // a symlink whose sizes come after its target: only the central directory says it is one
  const linkStream = new PassThrough();
  linkStream.end('run.sh');
  zip.addReadStream(linkStream, 'out/link-streamed', { mode: 0o120777, compress: false });
  exp.links.set('out/link-streamed', 'run.sh');
  file('last-empty', Buffer.alloc(0), 0o644, false);
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(path));
  return exp;
}

/** Every path below `root` with what it is. */
function listTree(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, rel)).sort()) {
    const p = rel ? `${rel}/${name}` : name;
    const st = lstatSync(join(root, p));
    out.push(p);
    if (st.isDirectory()) out.push(...listTree(root, p));
  }
  return out;
}

function checkSummary(t: Test, summary: ExtractSummary, exp: Expected) {
  t.same(summary.skipped, []);
  t.equal(
    summary.entries,
    exp.files.size + exp.links.size + 3,
    'files, links and the three directory entries',
  );
  t.equal(
    summary.bytes,
    [...exp.files.values()].reduce((a, f) => a + f.size, 0),
    'bytes: the files’ content',
  );
}

function checkTree(t: Test, target: string, exp: Expected) {
  t.same(
    listTree(target),
    [...exp.files.keys(), ...exp.dirs.keys(), ...exp.links.keys()].sort(),
    'exactly the archive’s paths, nothing more',
  );
  for (const [p, f] of exp.files) {
    const st = lstatSync(join(target, p));
    t.ok(st.isFile(), `${p} is a file`);
    t.equal(st.size, f.size, `${p} size`);
    t.equal(sha(readFileSync(join(target, p))), f.sha, `${p} content`);
    t.equal(st.mode & 0o7777, f.mode, `${p} mode ${f.mode.toString(8)}`);
  }
  for (const [p, mode] of exp.dirs) {
    const st = lstatSync(join(target, p));
    t.ok(st.isDirectory(), `${p} is a directory`);
    if (mode >= 0) t.equal(st.mode & 0o7777, mode, `${p} mode ${mode.toString(8)}`);
  }
  for (const [p, to] of exp.links) {
    t.ok(lstatSync(join(target, p)).isSymbolicLink(), `${p} is a symlink`);
    t.equal(readlinkSync(join(target, p)), to, `${p} target`);
  }
}

/** The file as a download: pieces of uneven sizes (some splitting headers), a pause now and then. */
async function* trickle(path: string, cutAt = Infinity): AsyncGenerator<Buffer> {
  const data = readFileSync(path).subarray(0, cutAt);
  const sizes = [1, 7, 29, 4093, 65_536, 300_001];
  for (let pos = 0, i = 0; pos < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield data.subarray(pos, pos + n);
    pos += n;
    if (i % 5 === 0) await new Promise((r) => setTimeout(r, 2));
  }
  if (cutAt !== Infinity) throw new Error('connection reset');
}

function suite(name: string, connector: () => Connector, dir: string) {
  t.test(name, async (t) => {
    const zipFile = join(dir, 'edge.zip');
    mkdirSync(dir, { recursive: true });
    const exp = await makeZip(zipFile);
    const target = join(dir, 'target');
    const summary = await extractZip(connector(), { root: target, zipFile });
    checkSummary(t, summary, exp);
    checkTree(t, target, exp);

    // the same archive unpacked while it arrives, in uneven pieces with pauses
    const streamTarget = join(dir, 'stream-target');
    const streamed = await extractZipStream(connector(), { root: streamTarget, body: trickle(zipFile) });
    await streamed.spooled.remove();
    t.ok(streamed.streamed >= 3, `${streamed.streamed} entries written while the download arrived`);
    checkSummary(t, streamed, exp);
    checkTree(t, streamTarget, exp);

    // extracting again over the same tree (a retried download) replaces, never appends
    writeFileSync(join(target, 'out/run.sh'), 'changed by the job\n');
    chmodSync(join(target, 'out/run.sh'), 0o600);
    await extractZip(connector(), { root: target, zipFile });
    t.equal(sha(readFileSync(join(target, 'out/run.sh'))), exp.files.get('out/run.sh')!.sha);

    // a truncated archive (a download cut short) is refused, not half unpacked as if whole
    const cut = join(dir, 'cut.zip');
    writeFileSync(cut, readFileSync(zipFile).subarray(0, 2 * MiB));
    await t.rejects(extractZip(connector(), { root: join(dir, 'cut-target'), zipFile: cut }), {
      code: 'TRANSFER',
      message: /not a valid zip archive/,
    });
    // a download that breaks off while it is being unpacked is a failed download (retried)...
    const broken = extractZipStream(connector(), {
      root: join(dir, 'cut-stream'),
      body: trickle(zipFile, 2 * MiB),
    });
    await t.rejects(broken, { retryable: true, message: /download failed: connection reset/ });
    t.ok((await broken.catch((e: unknown) => e)) instanceof DownloadCutShort, 'a DownloadCutShort');
    // ... and one that ends early without an error is not a zip
    await t.rejects(
      extractZipStream(connector(), {
        root: join(dir, 'cut-stream2'),
        body: Readable.from([readFileSync(zipFile).subarray(0, 2 * MiB)]),
      }),
      { code: 'TRANSFER', message: /not a valid zip archive/ },
    );

    // tar cannot start (its directory is below a file): tar's reason, the download dropped, no crash
    const below = join(zipFile, 'sub');
    await t.rejects(extractZip(connector(), { root: below, zipFile }), {
      code: 'TRANSFER',
      message: /^cannot create .*edge\.zip\/sub on the instance/,
    });
    const body = createReadStream(zipFile, { highWaterMark: 64 * 1024 });
    await t.rejects(extractZipStream(connector(), { root: below, body }), {
      code: 'TRANSFER',
      message: /^cannot create .*edge\.zip\/sub on the instance/,
    });
    t.ok(body.destroyed, 'the download is not left open');
  });
}

if (requireOrSkip(t, 'git')) {
  const dir = join(work, 'local');
  suite('local sandbox (GNU tar)', () => new LocalConnector({ workdir: dir }), dir);
}

// The instance's tar may be busybox's: put it first on PATH in a sandbox of its own.
const busybox = findProgram('busybox');
if (busybox) {
  const dir = join(work, 'busybox');
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  symlinkSync(busybox, join(bin, 'tar'));
  const connector = () =>
    new LocalConnector({
      workdir: dir,
      baseEnv: { PATH: `${bin}:/usr/bin:/bin`, HOME: dir },
    });
  t.test('busybox tar is the one used', async (t) => {
    let out = '';
    const res = await connector().exec('tar --help 2>&1 | head -1', {
      onStdout: (c) => void (out += c.toString()),
    });
    t.equal(res.exitCode, 0);
    t.match(out, /BusyBox/);
  });
  suite('local sandbox (busybox tar)', connector, dir);
} else {
  t.comment('busybox is not installed: the busybox tar case is not run');
}

if (requireOrSkip(t, 'sshd', 'ssh-keygen')) {
  const sshd = await startSshd(t);
  const pool = new SshConnectorPool({ knownHosts: new KnownHostsFile(join(work, 'known_hosts.json')) });
  t.teardown(() => pool.close());
  const connector = () =>
    pool.get({ host: sshd.host, port: sshd.port, username: sshd.username, privateKey: sshd.privateKey });
  suite('real sshd', connector, join(work, 'ssh'));
}

// Another writer: Python's zipfile writing to a pipe puts every entry's sizes in a data
// descriptor after its data (signed, 64-bit when asked for), as gitlab-runner's Go archive/zip does.
if (requireOrSkip(t, 'python3')) {
  t.test('a zip Python wrote to a pipe', async (t) => {
    const dir = join(work, 'python');
    mkdirSync(dir, { recursive: true });
    const script = `
import os, sys, zipfile
z = zipfile.ZipFile(sys.stdout.buffer, "w")
def add(name, data, mode, method, zip64=False):
    info = zipfile.ZipInfo(name, (2024, 5, 6, 7, 8, 10))
    info.external_attr = mode << 16
    info.compress_type = method
    with z.open(info, "w", force_zip64=zip64) as f:
        f.write(data)
add("bin/tool", os.urandom(300000), 0o100755, zipfile.ZIP_DEFLATED)
add("data/big.txt", "".join(str(i) for i in range(700000)).encode(), 0o100600, zipfile.ZIP_DEFLATED, zip64=True)
add("data/raw.bin", os.urandom(5 * 1024 * 1024 + 3), 0o100644, zipfile.ZIP_STORED)
add("data/small", b"tiny", 0o100644, zipfile.ZIP_STORED)
add("data/link", b"big.txt", 0o120777, zipfile.ZIP_STORED)
z.close()
`;
    const { execFileSync } = await import('node:child_process');
    const zip = execFileSync('python3', ['-c', script], { maxBuffer: 64 * MiB });
    t.equal(zip.readUInt16LE(6) & 0x8, 0x8, 'the first entry has a data descriptor');
    const root = join(dir, 'target');
    const res = await extractZipStream(new LocalConnector({ workdir: dir }), {
      root,
      body: Readable.from([
        zip.subarray(0, 100_000),
        zip.subarray(100_000, 4_000_000),
        zip.subarray(4_000_000),
      ]),
    });
    await res.spooled.remove();
    t.equal(res.streamed, 3, 'the three large files were written while the download arrived');
    t.equal(res.entries, 5);
    t.equal(
      readFileSync(join(root, 'data/big.txt'), 'utf8'),
      Array.from({ length: 700_000 }, (_, i) => String(i)).join(''),
    );
    t.equal(readFileSync(join(root, 'data/small'), 'utf8'), 'tiny');
    t.equal(statMode(join(root, 'bin/tool')), 0o755);
    t.equal(statMode(join(root, 'data/big.txt')), 0o600);
    t.equal(statMode(join(root, 'data/raw.bin')), 0o644);
    t.equal(lstatSync(join(root, 'data/raw.bin')).size, 5 * MiB + 3);
    t.equal(readlinkSync(join(root, 'data/link')), 'big.txt');
  });
}

function statMode(path: string): number {
  return lstatSync(path).mode & 0o7777;
}
