import t from 'tap';
import { crc32 } from 'node:zlib';
import { MaskerStream, MaskRules } from '../../../src/runtime/gitlab/masker.js';
import { outputLimitNotice, TraceLog } from '../../../src/runtime/gitlab/trace-log.js';

const SECRET = 's3cr3t-Value-123';

/** Writes `parts` to one stream and returns everything emitted, flush included. */
function mask(rules: MaskRules, parts: (string | Buffer)[]): string {
  const m = new MaskerStream(rules);
  const out = parts.map((p) => m.write(p));
  out.push(m.flush());
  return Buffer.concat(out).toString('utf8');
}

t.test('masked values become [MASKED], whole or split at every byte', async (t) => {
  const rules = new MaskRules({ secrets: [SECRET, 'short'] });
  const input = `key=${SECRET} and short, twice ${SECRET}${SECRET}.`;
  const expected = 'key=[MASKED] and [MASKED], twice [MASKED][MASKED].';
  t.equal(mask(rules, [input]), expected);
  for (let i = 1; i < input.length; i++) {
    t.equal(mask(rules, [input.slice(0, i), input.slice(i)]), expected, `split at ${i}`);
  }
  // One byte per write: the worst case for held-back tails.
  t.equal(mask(rules, [...input]), expected, 'one character per write');
});

t.test('a multi-byte secret split inside a UTF-8 character is still masked', async (t) => {
  const secret = 'pässwörd-ü';
  const rules = new MaskRules({ secrets: [secret] });
  const bytes = Buffer.from(`x ${secret} y`, 'utf8');
  for (let i = 1; i < bytes.length; i++) {
    t.equal(mask(rules, [bytes.subarray(0, i), bytes.subarray(i)]), 'x [MASKED] y', `split at byte ${i}`);
  }
});

t.test('a secret that is the prefix of a longer one waits for the longer match', async (t) => {
  const rules = new MaskRules({ secrets: ['abc', 'abcdef'] });
  t.equal(mask(rules, ['x abc', 'def y']), 'x [MASKED] y');
  t.equal(mask(rules, ['x abc', 'dz y']), 'x [MASKED]dz y');
  t.equal(mask(rules, ['x abc']), 'x [MASKED]', 'flush completes a pending match');
});

t.test('URL-encoded forms of secrets are masked too', async (t) => {
  const rules = new MaskRules({ secrets: ['p@ss word'] });
  t.equal(mask(rules, ['https://u:p%40ss%20word@host/']), 'https://u:[MASKED]@host/');
});

t.test('GitLab token prefixes: prefix kept, token masked (gitlab-runner token_masker cases)', async (t) => {
  const rules = new MaskRules({ secrets: [] });
  const cases: [string, string][] = [
    ['commodo glpat-imperdiet in voluptate', 'commodo glpat-[MASKED] in voluptate'],
    ['velit esseglpat-imperdiet', 'velit esseglpat-[MASKED]'],
    ['esseglpat-imperdiet=_-. end', 'esseglpat-[MASKED] end'],
    ['glpat-impglpat-erdiet Lorem', 'glpat-[MASKED] Lorem'],
    ['glpat|-imperdiet Lorem gl|pat-imperdiet in', 'glpat-[MASKED] Lorem glpat-[MASKED] in'],
    ['glpat| -imperdiet Lorem', 'glpat -imperdiet Lorem'],
    ['Lorglpat- ipsu dolor', 'Lorglpat- ipsu dolor'],
    ['runner glrt-abc|DEF_1.2 job glcbt-64_|xyz end', 'runner glrt-[MASKED] job glcbt-[MASKED] end'],
    ['glagent-a gldt-b glptt-c glft-d glimt-e glsoat-f glffct-g gloas-h glrtr-i gltok-j', ''],
    ['cookie _gitlab_session=abc123; path', 'cookie _gitlab_session=[MASKED]; path'],
  ];
  for (const [input, expected] of cases) {
    const want =
      expected ||
      'glagent-[MASKED] gldt-[MASKED] glptt-[MASKED] glft-[MASKED] glimt-[MASKED] glsoat-[MASKED] ' +
        'glffct-[MASKED] gloas-[MASKED] glrtr-[MASKED] gltok-[MASKED]';
    t.equal(mask(rules, input.split('|')), want, input);
  }
  // A token split at every position.
  const input = 'use glpat-AbC123._=-xyz now';
  for (let i = 1; i < input.length; i++) {
    t.equal(mask(rules, [input.slice(0, i), input.slice(i)]), 'use glpat-[MASKED] now', `split at ${i}`);
  }
});

t.test('features.token_mask_prefixes extends the defaults', async (t) => {
  const rules = new MaskRules({ secrets: [], tokenPrefixes: [' tok- ', ''] });
  t.equal(mask(rules, ['Lortok-ipsu amt', 'ok-t glpat-x']), 'Lortok-[MASKED] amtok-[MASKED] glpat-[MASKED]');
});

t.test('sensitive URL query parameters are masked, case-insensitively', async (t) => {
  const rules = new MaskRules({ secrets: [] });
  t.equal(
    mask(rules, ['GET /x?PRIVATE_TOKEN=12', '34&page=2 and &X-Amz-Signature=abcd end']),
    'GET /x?PRIVATE_TOKEN=[MASKED]&page=2 and &X-Amz-Signature=[MASKED] end',
  );
});

t.test('TraceLog masks each stream on its own', async (t) => {
  const log = new TraceLog({ secrets: [SECRET] });
  log.write('out: s3cr3t-', 'stdout');
  log.write('err: line\n', 'stderr');
  log.write('Value-123\n', 'stdout');
  log.flush();
  // Only the possible secret start is held back; stderr's line does not wait for it.
  t.equal(log.text(), 'out: err: line\n[MASKED]\n');
  t.notMatch(log.text(), SECRET);
});

t.test('writeSystem comes after earlier output and is masked too', async (t) => {
  const log = new TraceLog({ secrets: [SECRET] });
  log.write('partial s3cr', 'stdout');
  log.writeSystem(`ERROR: ${SECRET}\n`);
  t.equal(log.text(), `partial s3cr${'ERROR: [MASKED]\n'}`);
});

t.test('output limit: cut at the limit, the notice once, then nothing', async (t) => {
  const log = new TraceLog({ secrets: [], outputLimit: 100 });
  log.write('a'.repeat(60));
  log.write('b'.repeat(60));
  log.write('c'.repeat(60));
  log.writeSystem('Job succeeded\n');
  const text = log.text();
  t.equal(text, 'a'.repeat(60) + 'b'.repeat(40) + outputLimitNotice(100));
  t.match(
    text,
    "Job's log exceeded limit of 100 bytes. Job execution will continue but no more output will be collected.",
  );
  t.ok(log.limitExceeded);
});

t.test('checksum is crc32:%08x of exactly the stored bytes', async (t) => {
  const log = new TraceLog({ secrets: [SECRET] });
  t.equal(log.checksum(), 'crc32:00000000');
  log.write(`hello ${SECRET} ü\n`);
  log.flush();
  const stored = log.slice(0);
  t.equal(log.checksum(), 'crc32:' + crc32(stored).toString(16).padStart(8, '0'));
  t.equal(log.length, stored.length);
});

t.test('where a secret and a token or URL value start together, the secret is masked', async (t) => {
  // The order one alternation of secrets (longest first), URL values and tokens would give.
  const rules = new MaskRules({ secrets: ['glpat-abc', 'glpat-abcd', 'e=1'] });
  t.equal(mask(rules, ['x glpat-abcdef y']), 'x [MASKED]ef y', 'the longer secret, then the rest stays');
  t.equal(mask(rules, ['x glpat-zzz y']), 'x glpat-[MASKED] y', 'a token that is no secret');
  t.equal(mask(rules, ['u?private_token=e=1&k']), 'u?private_token=[MASKED]&k', 'the URL value starts first');
  t.equal(mask(rules, ['e=1 glpat-abc e=1']), '[MASKED] [MASKED] [MASKED]', 'each one, left to right');
  const other = new MaskRules({ secrets: ['tok'] });
  t.equal(
    mask(other, ['glpat-abcdef tok']),
    'glpat-[MASKED] [MASKED]',
    'rules of another job share the token pattern',
  );
});
