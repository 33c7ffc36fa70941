/**
 * FF_TIMESTAMPS: every log line carries GitLab Runner's `<time> <stream><type><flag>` prefix,
 * added after masking; the log parses back line by line into the text that was written.
 */
import t from 'tap';
import {
  LineTimestamper,
  parseTimestampedLine,
  timestampPrefix,
} from '../../../src/runtime/gitlab/timestamper.js';
import { TraceLog } from '../../../src/runtime/gitlab/trace-log.js';
import { JobTrace } from '../../../src/runtime/gitlab/trace.js';
import { manualTime } from '../../../src/util/time.js';
import { makeJob } from '../../fixtures/runtime/job.js';

const at = new Date('2026-12-02T06:07:18.123Z');

t.test('the prefix is RFC 3339 UTC with six fraction digits, then stream, type, flag', async (t) => {
  t.equal(timestampPrefix(at), '2026-12-02T06:07:18.123000Z ');
  const s = new LineTimestamper(1, 'O', () => at);
  t.equal(
    s.write(Buffer.from('one\ntwo\n')).toString(),
    '2026-12-02T06:07:18.123000Z 01O one\n2026-12-02T06:07:18.123000Z 01O two\n',
  );
  t.equal(s.write(Buffer.from('par')).toString(), '', 'a partial line waits for its end');
  t.equal(s.write(Buffer.from('tial\nnext')).toString(), '2026-12-02T06:07:18.123000Z 01O partial\n');
  t.equal(s.flush().toString(), '2026-12-02T06:07:18.123000Z 01O next\n', 'a flush ends the line');
  t.equal(s.write(Buffer.from(' more\n')).toString(), '2026-12-02T06:07:18.123000Z 01O+ more\n', 'continued');
  const e = new LineTimestamper(0, 'E', () => at);
  t.equal(
    e.write(Buffer.from('50%\r')).toString(),
    '2026-12-02T06:07:18.123000Z 00E 50%\r\n',
    'a \\r shows now',
  );
  t.equal(e.write(Buffer.from('100%\n')).toString(), '2026-12-02T06:07:18.123000Z 00E+100%\n');
  const long = new LineTimestamper(1, 'O', () => at);
  const out = long.write(Buffer.alloc(9000, 'x')).toString();
  t.equal(out.length, 28 + 4 + 9000 + 1, 'a line past 8 KiB goes out cut');
  t.match(long.write(Buffer.from('y\n')).toString(), / 01O\+y\n$/);
});

t.test('TraceLog: masked first, then stamped; lines parse back per stream', async (t) => {
  const secret = 'S3cr3t-Value-XYZ';
  const log = new TraceLog({ secrets: [secret], timestamps: { now: () => at } });
  log.writeSystem('\x1b[36;1mExecuting "step_script" stage of the job script\x1b[0;m\n');
  log.write(`value=${secret.slice(0, 6)}`, 'stdout');
  log.write(`${secret.slice(6)} done\n`, 'stdout');
  log.write('warn line\n', 'stderr');
  log.flush();
  const lines = log.text().split('\n').filter(Boolean).map(parseTimestampedLine);
  t.ok(lines.every(Boolean), 'every line has a prefix');
  t.same(
    lines.map((l) => [l!.stream, l!.type, l!.append, l!.text]),
    [
      [0, 'O', false, '\x1b[36;1mExecuting "step_script" stage of the job script\x1b[0;m'],
      [1, 'O', false, 'value=[MASKED] done'],
      [1, 'E', false, 'warn line'],
    ],
  );
  t.equal(lines[0]!.time.getTime(), at.getTime());
  t.notMatch(log.text(), secret.slice(0, 6));
});

t.test('TraceLog keeps what it was given: the caller may reuse its buffer after each write', async (t) => {
  for (const timestamps of [{ now: () => at }, undefined]) {
    const log = new TraceLog({ secrets: ['never-here'], timestamps });
    // One buffer, refilled for each write, as a stream that recycles its read buffer would.
    const buf = Buffer.alloc(16);
    for (const piece of ['first ', 'half\n', 'second line\n', 'tail ', 'end\n']) {
      const n = buf.write(piece);
      log.write(buf.subarray(0, n), 'stdout');
      buf.fill('#');
    }
    log.flush();
    const text = log.text().split('\n').filter(Boolean);
    t.same(
      timestamps ? text.map((l) => parseTimestampedLine(l)?.text) : text,
      ['first half', 'second line', 'tail end'],
      timestamps ? 'stamped: partial lines were copied while they waited' : 'unstamped',
    );
  }
});

t.test('JobTrace: on by default, off with FF_TIMESTAMPS=false', async (t) => {
  const time = manualTime(at);
  const client = {
    updateJob: async () => ({ kind: 'ok' as const, status: 200 }),
    patchTrace: async () => ({ kind: 'accepted' as const, end: 0 }),
  };
  const on = new JobTrace({ client: client as never, job: makeJob(), time });
  on.writeSystem('hello\n');
  t.equal(on.log.text(), '2026-12-02T06:07:18.123000Z 00O hello\n');
  const off = new JobTrace({
    client: client as never,
    job: makeJob({ variables: [{ key: 'FF_TIMESTAMPS', value: 'false' }] }),
    time,
  });
  off.writeSystem('hello\n');
  t.equal(off.log.text(), 'hello\n');
});
