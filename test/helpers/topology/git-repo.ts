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

export interface SuperRepo extends BareRepo {
  /** Head commit of the submodule's repository. */
  subSha: string;
  /** Head commit of the nested submodule (inside the submodule). */
  nestedSha: string;
}

/**
 * Git config through the environment for jobs and helpers that clone submodules over `file://`
 * (git ≥ 2.38.1 refuses that transport for submodules unless `protocol.file.allow=always`).
 */
export const FILE_SUBMODULES_ENV: Record<string, string> = {
  GIT_CONFIG_COUNT: '1',
  GIT_CONFIG_KEY_0: 'protocol.file.allow',
  GIT_CONFIG_VALUE_0: 'always',
};

/**
 * `group/project.git` with two submodules by relative URL: `sub` (`../sub.git`, which has a
 * submodule `nested` of its own, `../nested.git`) and `other` (`../other.git`).
 */
export function makeRepoWithSubmodules(t: Teardownable): SuperRepo {
  const dir = mkdtempSync(join(tmpdir(), 'rf-gitsub-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = { ...GIT_ENV, ...FILE_SUBMODULES_ENV };
  const git = (cwd: string, ...args: string[]) =>
    execFileSync('git', args, { cwd, env, encoding: 'utf8' }).trim();
  const group = join(dir, 'group');
  const publish = (name: string, files: Record<string, string>, extra?: (work: string) => void) => {
    const work = join(group, `${name}-work`);
    execFileSync('git', ['init', '-q', '-b', 'main', work], { env });
    for (const [f, content] of Object.entries(files)) writeFileSync(join(work, f), content);
    extra?.(work);
    git(work, 'add', '.');
    git(work, 'commit', '-q', '-m', `${name} commit`);
    execFileSync('git', ['clone', '-q', '--bare', work, join(group, `${name}.git`)], { env });
    return { work, sha: git(work, 'rev-parse', 'HEAD') };
  };
  const nested = publish('nested', { 'nested.txt': 'nested content\n' });
  const sub = publish('sub', { 'sub.txt': 'sub content\n' }, (work) =>
    git(work, 'submodule', 'add', '-q', '../nested.git', 'nested'),
  );
  publish('other', { 'other.txt': 'other content\n' });
  const top = publish('project', { 'README.md': 'top\n' }, (work) => {
    git(work, 'submodule', 'add', '-q', '../sub.git', 'sub');
    git(work, 'submodule', 'add', '-q', '../other.git', 'other');
  });
  const bare = join(group, 'project.git');
  return {
    path: bare,
    url: `file://${bare}`,
    ref: 'main',
    sha: top.sha,
    firstSha: top.sha,
    subSha: sub.sha,
    nestedSha: nested.sha,
  };
}

/**
 * A bare repository whose `big.bin` is tracked by git-lfs; the push uploads the LFS object into
 * the bare repository, so `git lfs pull` over `file://` fetches it (docs/test-topology).
 */
export function makeLfsRepo(t: Teardownable, content: string): BareRepo {
  const dir = mkdtempSync(join(tmpdir(), 'rf-gitlfs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // HOME of our own: `git lfs install` writes the user's global config.
  const env = { ...GIT_ENV, HOME: dir };
  const git = (cwd: string, ...args: string[]) =>
    execFileSync('git', args, { cwd, env, encoding: 'utf8' }).trim();
  const bare = join(dir, 'group', 'project.git');
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', bare], { env });
  const work = join(dir, 'work');
  execFileSync('git', ['init', '-q', '-b', 'main', work], { env });
  git(work, 'lfs', 'install', '--local');
  git(work, 'lfs', 'track', '*.bin');
  writeFileSync(join(work, 'big.bin'), content);
  writeFileSync(join(work, 'README.md'), 'lfs repo\n');
  git(work, 'add', '.');
  git(work, 'commit', '-q', '-m', 'lfs');
  const sha = git(work, 'rev-parse', 'HEAD');
  git(work, 'push', '-q', `file://${bare}`, 'main');
  return { path: bare, url: `file://${bare}`, ref: 'main', sha, firstSha: sha };
}

/** A bare SHA-256 repository (`repo_object_format: sha256`). */
export function makeSha256Repo(t: Teardownable): BareRepo {
  const dir = mkdtempSync(join(tmpdir(), 'rf-git256-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const git = (cwd: string, ...args: string[]) =>
    execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8' }).trim();
  const work = join(dir, 'work');
  execFileSync('git', ['init', '-q', '-b', 'main', '--object-format=sha256', work], { env: GIT_ENV });
  writeFileSync(join(work, 'README.md'), 'sha256 repo\n');
  git(work, 'add', '.');
  git(work, 'commit', '-q', '-m', 'first');
  const sha = git(work, 'rev-parse', 'HEAD');
  const bare = join(dir, 'group', 'project.git');
  execFileSync('git', ['clone', '-q', '--bare', work, bare], { env: GIT_ENV });
  return { path: bare, url: `file://${bare}`, ref: 'main', sha, firstSha: sha };
}
