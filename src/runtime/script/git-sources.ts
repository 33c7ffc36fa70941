/**
 * The body of `get_sources` (docs/gitlab-job-api.md §5, "Git"): fetch or clone `git_info` into the
 * project directory and check out the job's sha. It runs on the instance host, never in the job
 * image, so job images need no git. The remote URL carries the job token: it is never echoed.
 */
import type { JobPayload } from '../gitlab/job.js';
import type { JobLayout } from './layout.js';
import { jobVariable } from './layout.js';
import type { ScriptWriter } from './script-writer.js';
import { shellQuote } from './shell-quote.js';

export type GitStrategy = 'fetch' | 'clone' | 'none' | 'empty';

/** Refspecs used when GitLab sent none: every branch and tag. */
export const DEFAULT_REFSPECS = ['+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*'];

export function gitStrategy(job: JobPayload): GitStrategy {
  const v = jobVariable(job, 'GIT_STRATEGY');
  if (v === 'fetch' || v === 'clone' || v === 'none' || v === 'empty') return v;
  return job.allow_git_fetch ? 'fetch' : 'clone';
}

/** `GIT_DEPTH` when it is a number, else `git_info.depth`; 0 means full history. */
export function gitDepth(job: JobPayload): number {
  const v = jobVariable(job, 'GIT_DEPTH');
  if (v !== undefined && /^\d+$/.test(v)) return Number(v);
  return job.git_info.depth ?? 0;
}

/** `GIT_CLEAN_FLAGS` split into words; `none` disables the clean. Default `-ffdx`. */
function cleanFlags(job: JobPayload): string[] | undefined {
  const v = jobVariable(job, 'GIT_CLEAN_FLAGS');
  if (v === 'none') return undefined;
  return v === undefined || v.trim() === '' ? ['-ffdx'] : v.trim().split(/\s+/);
}

/** Appends the get_sources commands for `job` to `w`. Assumes the git env was exported. */
export function writeGetSources(w: ScriptWriter, job: JobPayload, layout: JobLayout): void {
  const strategy = gitStrategy(job);
  const dir = shellQuote(layout.projectDir);
  if (strategy === 'none') {
    w.notice('Skipping Git repository setup');
    w.raw(`mkdir -p ${dir}`);
    return;
  }
  if (strategy === 'empty') {
    w.notice('Skipping Git repository setup and creating an empty build directory');
    w.raw(`rm -rf ${dir}`).raw(`mkdir -p ${dir}`);
    return;
  }

  const git = job.git_info;
  const depth = gitDepth(job);
  w.notice(depth > 0 ? `Fetching changes with git depth set to ${depth}...` : 'Fetching changes...');
  if (strategy === 'clone') w.raw(`rm -rf ${dir}`);
  // An empty template: no sample hooks or description copied from the host's git install.
  const template = shellQuote(`${layout.tmpDir}/git-template`);
  w.raw(`rm -rf ${template}`).raw(`mkdir -p ${template}`);
  w.raw(`git -c init.defaultBranch=main init ${dir} --template ${template} --quiet`);
  w.cd(layout.projectDir);
  const url = shellQuote(git.repo_url);
  w.raw(
    `if git remote get-url origin >/dev/null 2>&1; then git remote set-url origin ${url}; ` +
      `else git remote add origin ${url}; fi`,
  );
  const refspecs = (git.refspecs && git.refspecs.length > 0 ? git.refspecs : DEFAULT_REFSPECS).map(
    shellQuote,
  );
  const extra = jobVariable(job, 'GIT_FETCH_EXTRA_FLAGS');
  const fetch = [
    'git -c http.userAgent=runfleet fetch origin --no-recurse-submodules',
    ...refspecs,
    ...(depth > 0 ? ['--depth', String(depth)] : []),
    '--prune',
    '--quiet',
    ...(extra ? extra.trim().split(/\s+/).map(shellQuote) : []),
  ].join(' ');
  // A shallow repository left by an earlier job must be deepened when full history is wanted.
  if (depth === 0) {
    w.raw(`if [ -f .git/shallow ]; then ${fetch} --unshallow; else ${fetch}; fi`);
  } else {
    w.raw(fetch);
  }
  w.notice(`Checking out ${git.sha.slice(0, 8)} as detached HEAD (ref is ${git.ref})...`);
  w.raw(`git -c submodule.recurse=false checkout -f -q ${shellQuote(git.sha)}`);
  const flags = cleanFlags(job);
  if (flags) w.raw(`git clean ${flags.map(shellQuote).join(' ')}`);
}
