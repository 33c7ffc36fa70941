/**
 * Cache keys, policies, `when`, fallbacks and object names, checked against gitlab-runner's rules
 * (cache/cachekey Sanitize, shells/abstract.go newCacheConfig, cache/cache.go GetAdapter).
 */
import t from 'tap';
import {
  cacheObjectName,
  cacheRequestTimeoutMs,
  isSkipped,
  localCachePath,
  resolveCache,
  restoreAttempts,
  sanitizeCacheKey,
  shouldArchive,
  type ResolvedCache,
} from '../../../src/runtime/cache/cache-key.js';
import type { JobPayload } from '../../../src/runtime/gitlab/job.js';

const job = {
  id: 1,
  token: 'glcbt-x',
  job_info: { id: 1, name: 'build', stage: 'build', project_id: 10, project_name: 'p' },
  git_info: { repo_url: 'https://example.com/g/p.git', ref: 'main', sha: 'abc' },
  runner_info: { timeout: 60 },
  variables: [],
  steps: [],
} as JobPayload;

const vars = (o: Record<string, string> = {}) => new Map(Object.entries(o));
const resolved = (c: ReturnType<typeof resolveCache>): ResolvedCache => {
  if (isSkipped(c)) throw new Error(`skipped: ${c.skipped}`);
  return c;
};

t.test(
  'sanitising as gitlab-runner: traversal resolved inside the key, %2f and \\ decoded, trailing blanks dropped',
  async (t) => {
    t.equal(sanitizeCacheKey('main/deps'), 'main/deps');
    t.equal(sanitizeCacheKey('../../etc/passwd'), 'etc/passwd');
    t.equal(sanitizeCacheKey('a%2Fb%2e%2E/c'), 'a/b../c');
    t.equal(sanitizeCacheKey('win\\style'), 'win/style');
    t.equal(sanitizeCacheKey('key/  /  '), 'key');
    t.equal(sanitizeCacheKey('..'), undefined);
    t.equal(sanitizeCacheKey(''), undefined);
  },
);

t.test('default key, expansion, policy and when', async (t) => {
  const d = resolved(resolveCache(job, { paths: ['x'] }, vars()));
  t.equal(d.key, 'build/main', 'default key <job name>/<ref>');
  t.equal(d.policy, 'pull-push');
  t.equal(d.when, 'on_success');
  const e = resolved(
    resolveCache(
      job,
      { key: '$CI_COMMIT_REF_SLUG-deps', paths: ['$DIR/x'], policy: '$POL', when: 'always' },
      vars({ CI_COMMIT_REF_SLUG: 'feat', DIR: 'vendor', POL: 'pull' }),
    ),
  );
  t.same([e.key, e.paths, e.policy, e.when], ['feat-deps', ['vendor/x'], 'pull', 'always']);
  const s = resolved(resolveCache(job, { key: 'a/../b ', paths: ['x'] }, vars()));
  t.equal(s.key, 'b');
  t.same(s.warnings, ['cache key "a/../b " sanitized to "b"']);
  const bad = resolveCache(job, { key: 'k', paths: ['x'], policy: 'pull-only' }, vars());
  t.ok(isSkipped(bad) && bad.fatal, 'an unknown policy fails the job');
  t.match(isSkipped(bad) ? bad.skipped : '', /unknown cache policy pull-only for k/);
});

t.test('fallback keys in order, then CACHE_FALLBACK_KEY unless it ends in -protected', async (t) => {
  const r = resolved(
    resolveCache(
      job,
      { key: 'k', paths: ['x'], fallback_keys: ['$A-1', 'f2'] },
      vars({ A: 'x', CACHE_FALLBACK_KEY: 'global' }),
    ),
  );
  t.same(r.fallbackKeys, ['x-1', 'f2', 'global']);
  const p = resolved(
    resolveCache(job, { key: 'k', paths: ['x'] }, vars({ CACHE_FALLBACK_KEY: 'main-protected' })),
  );
  t.same(p.fallbackKeys, [], 'a -protected fallback is refused');
  t.same(p.warnings, ['CACHE_FALLBACK_KEY "main-protected" not allowed to end in "-protected"']);
});

t.test('when decides which archive stage takes an entry', async (t) => {
  t.same(
    (['on_success', 'on_failure', 'always'] as const).map((w) => [
      shouldArchive(w, true),
      shouldArchive(w, false),
    ]),
    [
      [true, false],
      [false, true],
      [true, true],
    ],
  );
});

t.test('RESTORE_CACHE_ATTEMPTS clamped to 1..10, CACHE_REQUEST_TIMEOUT in minutes', async (t) => {
  t.equal(restoreAttempts(vars()), 1);
  t.equal(restoreAttempts(vars({ RESTORE_CACHE_ATTEMPTS: '3' })), 3);
  t.equal(restoreAttempts(vars({ RESTORE_CACHE_ATTEMPTS: '99' })), 10);
  t.equal(restoreAttempts(vars({ RESTORE_CACHE_ATTEMPTS: '0' })), 1);
  t.equal(cacheRequestTimeoutMs(vars()), 600_000);
  t.equal(cacheRequestTimeoutMs(vars({ CACHE_REQUEST_TIMEOUT: '2' })), 120_000);
});

t.test("object names are gitlab-runner's (cache/cache_test.go TestGenerateObjectName)", async (t) => {
  const o = (path: string, shared: boolean, key: string) =>
    cacheObjectName({ path, shared, shortToken: 'longtoken' }, 10, key);
  t.equal(o('', false, 'key'), 'runner/longtoken/project/10/key');
  t.equal(o('whatever', false, 'key'), 'whatever/runner/longtoken/project/10/key');
  t.equal(
    o('some/other/path/goes/here', false, 'key'),
    'some/other/path/goes/here/runner/longtoken/project/10/key',
  );
  t.equal(o('', true, 'key'), 'project/10/key');
  t.equal(o('', false, '../../../x'), undefined, 'outside the project prefix');
  t.equal(localCachePath('g/p', 'main/deps'), 'g/p/main/deps/cache.zip', "the non-distributed cache's file");
  t.equal(localCachePath('g/p', '../x'), undefined);
});
