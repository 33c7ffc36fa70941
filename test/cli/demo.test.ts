import t from 'tap';
import { execFileSync } from 'node:child_process';
import { runCli } from './helpers.js';

t.test('runfleet demo runs the whole loop on the embedded defaults', async (t) => {
  const dir = t.testdir({ fleets: {} });
  // A git repository with a branch, so the demo's checkout job clones real sources.
  const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, stdio: 'ignore' });
  git('init', '-q', '-b', 'main');
  git('-c', 'user.email=ci@example.com', '-c', 'user.name=ci', 'commit', '-q', '--allow-empty', '-m', 'demo');

  const r = await runCli(dir, ['demo', '--timeout', '90']);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.match(r.stdout, /fleet\.demo will be created/);
  t.match(r.stdout, /fleet demo: [1-3] instance\(s\)/, 'scaled up');
  t.match(r.stdout, /fleet demo: 0 instance\(s\)/, 'scaled back to zero');
  t.match(r.stdout, /#1\s+checkout\s+success/);
  t.match(r.stdout, /failing\s+failed\s+script_failure\s+ok\s+as expected/);
  t.match(r.stdout, /the secret is \[MASKED\]/);
  t.match(r.stdout, /compile\s+success/);
  t.match(r.stdout, /unit-test\s+success/);
  t.match(
    r.stdout,
    /Pipeline: compile uploaded dist\.zip \(archive, \d+ bytes\) and default\.gz \(dotenv, \d+ bytes\)/,
  );
  t.match(
    r.stdout,
    /printed: "app built by job \d+", "testing version 1\.0\.\d+"/,
    'artifacts and dotenv arrived',
  );
  t.notMatch(r.stdout + r.stderr, /demo-Secret-1234/, 'the masked value never shows');
  t.notMatch(r.stdout + r.stderr, /glrt-demo[0-9a-f]{24}/, 'the runner token never shows');
  t.match(r.stdout, /The whole loop ran/);
  t.match(r.stdout, /cached-build\s+success\s+ok\s+miss, saved/, 'the first cached build saves its deps');
  t.match(r.stdout, /cached-build\s+success\s+ok\s+hit, unchanged/, 'the second run restores them');
  t.match(r.stdout, /The second cached build's log: "deps from the cache: lib 1\.0 \(fetched by job \d+\)"/);

  // The cache outlives the demo: the next demo's first cached build hits it too.
  const again = await runCli(dir, ['demo', '--timeout', '90']);
  t.equal(again.code, 0, again.stdout + again.stderr);
  t.notMatch(again.stdout, /cached-build\s+success\s+ok\s+miss/, 'no miss on the second demo run');
});
