/**
 * The transfer module on real instances: a local sandbox (the `local` provider's connector) and a
 * real sshd on loopback. A project tree with globs, excludes, untracked files, a symlink and a hard
 * link is selected, streamed off as zip / gzip / raw, read back with yauzl and zlib, and unpacked
 * into another directory through `tar -x`; over SSH a 48 MiB tree goes through a consumer slower
 * than the channel (backpressure must not lose or reorder bytes), and failures on the instance
 * surface as errors on the stream, never as a complete-looking archive.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  lstatSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import yauzl from 'yauzl';
import type { Connector } from '../../../src/runtime/connectors/connector.js';
import { KnownHostsFile } from '../../../src/runtime/connectors/known-hosts.js';
import { LocalConnector } from '../../../src/runtime/connectors/local-connector.js';
import { SshConnectorPool } from '../../../src/runtime/connectors/ssh-connector.js';
import {
  archiveStream,
  extractZip,
  selectFiles,
  selectionLog,
  spoolToFile,
} from '../../../src/runtime/transfer/index.js';
import { requireOrSkip } from '../../helpers/topology/require-or-skip.js';
import { startSshd } from '../../helpers/topology/sshd.js';

const work = mkdtempSync(join(tmpdir(), 'rf-transfer-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

function makeProject(root: string): void {
  const w = (p: string, data: string | Buffer) => {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), data);
  };
  w('dist/a.js', 'console.log(1)\n');
  w('dist/sub/b.js', 'b\n');
  w('dist/.hidden', 'dot\n');
  w('dist/tmp/scratch.o', 'tmp\n');
  w('dist/tmp/keep/deep.o', 'deep\n');
  w('logs/1.log', 'one\n');
  w('logs/2.txt', 'two\n');
  w('src/main.c', 'int main;\n');
  w('reports/junit.xml', '<testsuites/>\n');
  symlinkSync('a.js', join(root, 'dist/link.js'));
  linkSync(join(root, 'dist/a.js'), join(root, 'dist/hard.js'));
  const git = (...args: string[]) => execFileSync('git', args, { cwd: root, stdio: 'ignore' });
  git('init', '-q');
  git('add', 'src', 'logs', 'reports');
  git('-c', 'user.email=t@example.com', '-c', 'user.name=t', 'commit', '-qm', 'x');
  w('untracked-notes.txt', 'notes\n');
}

async function zipEntries(path: string): Promise<Map<string, { mode: number; data: Buffer }>> {
  const out = new Map<string, { mode: number; data: Buffer }>();
  await new Promise<void>((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err ?? new Error('no zip'));
      zip.on('end', resolve);
      zip.on('error', reject);
      zip.on('entry', (e: yauzl.Entry) => {
        zip.openReadStream(e, (err2, s) => {
          if (err2 || !s) return reject(err2 ?? new Error('no stream'));
          const chunks: Buffer[] = [];
          s.on('data', (c: Buffer) => chunks.push(c));
          s.on('end', () => {
            out.set(e.fileName, { mode: e.externalFileAttributes >>> 16, data: Buffer.concat(chunks) });
            zip.readEntry();
          });
        });
      });
      zip.readEntry();
    });
  });
  return out;
}

function suite(name: string, connector: () => Connector, dir: string) {
  t.test(name, async (t) => {
    const root = join(dir, 'project');
    makeProject(root);
    const c = connector();

    const sel = await selectFiles(c, {
      root,
      paths: ['dist/', 'logs/*.log', 'missing/**', '../outside'],
      exclude: ['dist/tmp/**'],
      untracked: true,
    });
    t.same(
      sel.paths,
      [
        'dist',
        'dist/.hidden',
        'dist/a.js',
        'dist/hard.js',
        'dist/link.js',
        'dist/sub',
        'dist/sub/b.js',
        'logs/1.log',
        'untracked-notes.txt',
      ].concat(),
      'globs, exclude (the directory and all below it) and untracked files; tracked files are not taken',
    );
    t.same(sel.patterns, [
      { pattern: 'dist', found: 7 },
      { pattern: 'logs/*.log', found: 1 },
      { pattern: 'missing/**', found: 0 },
    ]);
    t.ok(sel.directories.has('dist/sub') && !sel.directories.has('dist/a.js'));
    t.equal(
      sel.untracked,
      6,
      'untracked: the five files under dist and the notes (excluded ones not counted)',
    );
    const log = selectionLog(sel).map((l) => l.text);
    t.ok(log.includes('dist: found 7 matching artifact files and directories'), 'gitlab-runner line');
    t.ok(
      log.some((l) =>
        l.startsWith('missing/**: no matching files. Ensure that the artifact path is relative'),
      ),
    );
    t.ok(log.some((l) => l.includes('not a subpath of project directory: ../outside')));
    t.ok(
      log.includes('dist/tmp/**: excluded 6 files'),
      'each time a path was left out (4 under dist/, 2 untracked)',
    );

    const none = await selectFiles(c, { root: join(dir, 'no-such-project'), paths: ['dist/'] });
    t.same(none.paths, [], 'a missing project directory matches nothing');
    t.match(none.warnings, [/the project directory does not exist/]);

    // zip, read back with an independent reader
    const zip = archiveStream(c, { root, paths: sel.paths, format: 'zip' });
    const spooled = await spoolToFile(zip.stream);
    const summary = await zip.done;
    t.equal(summary.entries, sel.paths.length, 'every path became an entry');
    const entries = await zipEntries(spooled.path);
    t.same([...entries.keys()].sort(), [
      'dist/',
      'dist/.hidden',
      'dist/a.js',
      'dist/hard.js',
      'dist/link.js',
      'dist/sub/',
      'dist/sub/b.js',
      'logs/1.log',
      'untracked-notes.txt',
    ]);
    t.equal(entries.get('dist/a.js')?.data.toString(), 'console.log(1)\n');
    t.equal(
      entries.get('dist/hard.js')?.data.toString(),
      'console.log(1)\n',
      'a hard link keeps its content',
    );
    t.equal((entries.get('dist/link.js')?.mode ?? 0) & 0o170000, 0o120000, 'a symlink stays a symlink');
    t.equal(entries.get('dist/link.js')?.data.toString(), 'a.js');

    // and unpacked on the instance into another directory
    const target = join(dir, 'next-job');
    const extracted = await extractZip(c, { root: target, zipFile: spooled.path });
    t.same(extracted.skipped, []);
    t.equal(readFileSync(join(target, 'dist/sub/b.js'), 'utf8'), 'b\n');
    t.equal(readFileSync(join(target, 'untracked-notes.txt'), 'utf8'), 'notes\n');
    t.equal(readlinkSync(join(target, 'dist/link.js')), 'a.js');
    t.ok(lstatSync(join(target, 'dist/sub')).isDirectory());
    await spooled.remove();

    // gzip: one member per file, named as gitlab-runner names them
    const gz = archiveStream(c, { root, paths: ['logs/1.log', 'reports/junit.xml'], format: 'gzip' });
    const gzFile = await spoolToFile(gz.stream);
    await gz.done;
    const bytes = readFileSync(gzFile.path);
    t.equal(gunzipSync(bytes).toString(), 'one\n<testsuites/>\n', 'members decompress in order');
    t.equal(bytes.subarray(10, 16).toString('latin1'), '1.log\0', 'member name is the base name');
    t.ok(bytes.includes(Buffer.from('reports/junit.xml\0', 'latin1')), 'comment is the path');
    await gzFile.remove();

    // raw: the one file as it is; two files are refused
    const raw = archiveStream(c, { root, paths: ['reports/junit.xml'], format: 'raw' });
    const rawFile = await spoolToFile(raw.stream);
    await raw.done;
    t.equal(readFileSync(rawFile.path, 'utf8'), '<testsuites/>\n');
    await rawFile.remove();
    const two = archiveStream(c, { root, paths: ['logs/1.log', 'logs/2.txt'], format: 'raw' });
    await t.rejects(two.done, { code: 'TRANSFER', message: /only one file can be sent as raw/ });

    // a file that vanished after the listing: the stream errors, the zip is never finished
    const broken = archiveStream(c, { root, paths: ['dist/a.js', 'gone.txt'], format: 'zip' });
    await t.rejects(spoolToFile(broken.stream), /tar on the instance failed/);
    await t.rejects(broken.done, { code: 'TRANSFER' });

    // an archive with names that escape the directory: skipped, never written
    const evil = join(dir, 'evil.zip');
    const { default: yazl } = await import('yazl');
    const z = new yazl.ZipFile();
    z.addBuffer(Buffer.from('x'), 'ok.txt');
    z.addBuffer(Buffer.from('/tmp'), 'ln', { mode: 0o120777 });
    z.addBuffer(Buffer.from('pwned'), 'ln/escape.txt');
    z.end();
    await spoolToFile(
      z.outputStream as unknown as NodeJS.ReadableStream & import('node:stream').Readable,
    ).then(async (f) => {
      writeFileSync(evil, readFileSync(f.path));
      await f.remove();
    });
    const evilTarget = join(dir, 'evil-target');
    const res = await extractZip(c, { root: evilTarget, zipFile: evil });
    t.same(res.skipped, ['ln/escape.txt: below a symlink of the same archive']);
    t.equal(readFileSync(join(evilTarget, 'ok.txt'), 'utf8'), 'x');
  });
}

if (requireOrSkip(t, 'git')) {
  const dir = join(work, 'local');
  suite('local sandbox', () => new LocalConnector({ workdir: dir }), dir);
}

if (requireOrSkip(t, 'sshd', 'ssh-keygen', 'git')) {
  const sshd = await startSshd(t);
  const pool = new SshConnectorPool({ knownHosts: new KnownHostsFile(join(work, 'known_hosts.json')) });
  t.teardown(() => pool.close());
  const connector = () =>
    pool.get({ host: sshd.host, port: sshd.port, username: sshd.username, privateKey: sshd.privateKey });
  const dir = join(work, 'ssh');
  suite('real sshd', connector, dir);

  t.test('over SSH, a consumer slower than the channel gets every byte in order', async (t) => {
    const root = join(dir, 'big');
    const hash = createHash('sha256');
    for (let i = 0; i < 12; i++) {
      const data = randomBytes(4 * 1024 * 1024);
      mkdirSync(join(root, 'out'), { recursive: true });
      writeFileSync(join(root, 'out', `part-${i}.bin`), data);
      hash.update(data);
    }
    const sel = await selectFiles(connector(), { root, paths: ['out'] });
    const zip = archiveStream(connector(), { root, paths: sel.paths, format: 'zip', level: 0 });
    // Every 64 KiB waits a timer turn: the SSH channel must pause rather than buffer 48 MiB.
    const slow = new Transform({
      highWaterMark: 64 * 1024,
      transform(chunk: Buffer, _e, cb) {
        setImmediate(() => cb(null, chunk));
      },
    });
    const spooled = await spoolToFile(zip.stream.pipe(slow));
    const summary = await zip.done;
    t.equal(summary.bytes, 48 * 1024 * 1024);
    const target = join(dir, 'big-copy');
    await extractZip(connector(), { root: target, zipFile: spooled.path });
    const back = createHash('sha256');
    for (let i = 0; i < 12; i++) back.update(readFileSync(join(target, 'out', `part-${i}.bin`)));
    t.equal(back.digest('hex'), hash.digest('hex'), 'the unpacked files are the original bytes');
    await spooled.remove();
  });
}
