/** A local bare git repository with a couple of commits, to clone from with `file://` URLs. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Teardownable } from './sshd.js';

export interface BareRepo {
  /** Path of the bare repository; usable as `repo_url`. */
  path: string;
  url: string;
  ref: string;
  /** Head commit of `ref`. */
  sha: string;
  /** The commit before it. */
  firstSha: string;
}

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'runfleet test',
  GIT_AUTHOR_EMAIL: 'test@runfleet.invalid',
  GIT_COMMITTER_NAME: 'runfleet test',
  GIT_COMMITTER_EMAIL: 'test@runfleet.invalid',
};

export function makeBareRepo(
  t: Teardownable,
  files: Record<string, string> = { 'README.md': 'hello\n' },
): BareRepo {
  const dir = mkdtempSync(join(tmpdir(), 'rf-git-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const work = join(dir, 'work');
  const bare = join(dir, 'group', 'project.git');
  const git = (cwd: string, ...args: string[]) =>
    execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8' }).trim();
  execFileSync('git', ['init', '-q', '-b', 'main', work], { env: GIT_ENV });
  writeFileSync(join(work, 'first.txt'), 'first\n');
  git(work, 'add', '.');
  git(work, 'commit', '-q', '-m', 'first');
  const firstSha = git(work, 'rev-parse', 'HEAD');
  for (const [name, content] of Object.entries(files)) writeFileSync(join(work, name), content);
  git(work, 'add', '.');
  git(work, 'commit', '-q', '-m', 'second');
  const sha = git(work, 'rev-parse', 'HEAD');
  execFileSync('git', ['clone', '-q', '--bare', work, bare], { env: GIT_ENV });
  return { path: bare, url: `file://${bare}`, ref: 'main', sha, firstSha };
}
