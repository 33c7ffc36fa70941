/**
 * The body of `get_sources` (docs/gitlab-job-api.md §5, "Git"): fetch or clone `git_info` into the
 * project directory, check out the job's sha, update submodules and pull LFS objects, in GitLab
 * Runner's order and with its log lines (`R:shells/abstract.go` writeGetSourcesScript). It runs on
 * the instance host, never in the job image, so job images need no git. The remote URL carries the
 * job token: it is never echoed.
 */
import type { JobPayload } from '../gitlab/job.js';
import { gitSettings, type GitSettings, type GitStrategy } from './build-settings.js';
import type { JobLayout } from './layout.js';
import { jobVariable } from './layout.js';
import type { ScriptWriter } from './script-writer.js';
import { shellQuote } from './shell-quote.js';

export type { GitStrategy } from './build-settings.js';

/** Refspecs used when GitLab sent none: every branch and tag. */
export const DEFAULT_REFSPECS = ['+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*'];

/** The variable `CI_SERVER_TLS_CA_FILE` holds GitLab's CA chain in when the manager has one. */
export const TLS_CA_FILE_VARIABLE = 'CI_SERVER_TLS_CA_FILE';

export function gitStrategy(job: JobPayload): GitStrategy {
  return gitSettings(job).strategy;
}

/** Name of the git config file (under the tmp dir) that holds the credential rewrites. */
const EXT_CONFIG = 'git-ext.config';

/**
 * The commands that clear a worktree git could not fetch into (GitLab Runner's clear_worktree
 * stage, run once before the second get_sources attempt): an untracked file in an uninitialised
 * submodule can make every later fetch fail, `git rm -rf .` removes it.
 */
export function writeClearWorktree(w: ScriptWriter, layout: JobLayout): void {
  const dir = shellQuote(layout.projectDir);
  w.notice('Deleting tracked and untracked files...');
  // Best effort: a repository too broken for `git rm` is removed by the clone or fetch anyway.
  w.raw(
    `if [ -d ${dir} ]; then (cd ${dir} && git rm -rf --ignore-unmatch --quiet . && git clean -ffdx -q) || true; fi`,
  );
}

/** Appends the get_sources commands for `job` to `w`. Assumes the git env was exported. */
export function writeGetSources(w: ScriptWriter, job: JobPayload, layout: JobLayout): void {
  const s = gitSettings(job);
  const dir = shellQuote(layout.projectDir);
  // Skip the smudge filter during fetch and checkout (it allocates per file); `git lfs pull`
  // fetches the objects afterwards. A job that sets GIT_LFS_SKIP_SMUDGE itself gets pointers.
  if (!s.lfsSkipSmudge) w.raw('export GIT_LFS_SKIP_SMUDGE=1');
  if (s.strategy === 'none') {
    w.notice('Skipping Git repository setup');
    w.raw(`mkdir -p ${dir}`);
    w.notice('Skipping Git checkout');
    w.notice('Skipping Git submodules setup');
    return;
  }
  if (s.strategy === 'empty') {
    w.notice('Skipping Git repository setup and creating an empty build directory');
    w.raw(`rm -rf ${dir}`).raw(`mkdir -p ${dir}`);
    w.notice('Skipping Git checkout');
    w.notice('Skipping Git submodules setup');
    return;
  }

  const git = job.git_info;
  writeGitCleanup(w, layout, s);
  if (s.strategy === 'clone') w.raw(`rm -rf ${dir}`);
  w.notice(s.depth > 0 ? `Fetching changes with git depth set to ${s.depth}...` : 'Fetching changes...');
  // An empty template: no sample hooks or description copied from the host's git install.
  const template = shellQuote(`${layout.tmpDir}/git-template`);
  w.raw(`rm -rf ${template}`).raw(`mkdir -p ${template}`);
  const objectFormat = s.objectFormat !== 'sha1' ? ` --object-format ${shellQuote(s.objectFormat)}` : '';
  w.raw(`git -c init.defaultBranch=main init ${dir} --template ${template} --quiet${objectFormat}`);
  w.cd(layout.projectDir);
  const url = shellQuote(git.repo_url);
  w.raw(`if git remote add origin ${url} >/dev/null 2>&1; then`);
  w.notice('Created fresh repository.');
  w.raw(`else git remote set-url origin ${url}; fi`);
  writeExternalConfig(w, job, layout, s);
  const refspecs = (git.refspecs && git.refspecs.length > 0 ? git.refspecs : DEFAULT_REFSPECS).map(
    shellQuote,
  );
  const fetch = [
    'git -c http.userAgent=runfleet fetch origin --no-recurse-submodules',
    ...refspecs,
    ...(s.depth > 0 ? ['--depth', String(s.depth)] : []),
    ...s.fetchFlags.map(shellQuote),
  ].join(' ');
  // A shallow repository left by an earlier job must be deepened when full history is wanted.
  if (s.depth === 0) {
    w.raw(`if [ -f .git/shallow ]; then ${fetch} --unshallow; else ${fetch}; fi`);
  } else {
    w.raw(fetch);
  }

  if (s.checkout) {
    w.notice(`Checking out ${git.sha.slice(0, 8)} as detached HEAD (ref is ${git.ref})...`);
    w.raw(`git -c submodule.recurse=false checkout -f -q ${shellQuote(git.sha)}`);
    if (s.cleanFlags.length > 0) w.raw(`git clean ${s.cleanFlags.map(shellQuote).join(' ')}`);
    if (!s.lfsSkipSmudge) w.raw('if git lfs version >/dev/null 2>&1; then git lfs pull; fi');
  } else {
    w.notice('Skipping Git checkout');
  }
  writeSubmodules(w, s, `${layout.tmpDir}/${EXT_CONFIG}`);
}

/** Lock files a killed earlier job may have left, and hooks a job may have planted. */
function writeGitCleanup(w: ScriptWriter, layout: JobLayout, s: GitSettings): void {
  const gitDir = `${layout.projectDir}/.git`;
  const withModules = s.submoduleStrategy === 'normal' || s.submoduleStrategy === 'recursive';
  const files = ['index.lock', 'shallow.lock', 'HEAD.lock', 'hooks/post-checkout', 'config.lock'];
  // One rm for all of them: a process each would be five.
  w.raw(`rm -f ${files.map((f) => shellQuote(`${gitDir}/${f}`)).join(' ')}`);
  for (const f of files) {
    if (withModules) {
      const base = f.split('/').pop()!;
      w.raw(
        `if [ -d ${shellQuote(`${gitDir}/modules`)} ]; then find ${shellQuote(`${gitDir}/modules`)} -name ${shellQuote(base)} -type f -exec rm -f {} +; fi`,
      );
    }
  }
  w.raw(
    `if [ -d ${shellQuote(`${gitDir}/refs`)} ]; then find ${shellQuote(`${gitDir}/refs`)} -name '*.lock' -type f -exec rm -f {} +; fi`,
  );
}

/**
 * Credentials and TLS settings git needs for this job, in a config file under the tmp dir (removed
 * with it) that the repository includes: the job token for other projects on the same GitLab
 * (submodules with absolute URLs), `GIT_SUBMODULE_FORCE_HTTPS` rewrites of SSH URLs, and
 * `CI_SERVER_TLS_CA_FILE` for a GitLab with a private CA. Git reads included files at every call,
 * also for submodule operations through `-c include.path`.
 */
function writeExternalConfig(w: ScriptWriter, job: JobPayload, layout: JobLayout, s: GitSettings): void {
  const file = `${layout.tmpDir}/${EXT_CONFIG}`;
  const q = shellQuote(file);
  // Emptied, not removed and made again: the stage's preamble made the tmp dir, and a builtin
  // redirection costs no process.
  w.raw(`: > ${q}`);
  const set = (key: string, value: string) =>
    w.raw(`git config --file ${q} --add ${shellQuote(key)} ${shellQuote(value)}`);
  const base = httpBase(job);
  if (base) {
    const authed = `${base.protocol}//gitlab-ci-token:${encodeURIComponent(job.token)}@${base.host}`;
    const plain = `${base.protocol}//${base.host}`;
    set(`url.${authed}.insteadOf`, plain);
    if (s.submoduleForceHttps) {
      const sshHost = jobVariable(job, 'CI_SERVER_SHELL_SSH_HOST') || base.hostname;
      const sshPort = jobVariable(job, 'CI_SERVER_SHELL_SSH_PORT') ?? '';
      if (sshPort === '' || sshPort === '22') {
        set(`url.${authed}/.insteadOf`, `git@${sshHost}:`);
        set(`url.${authed}.insteadOf`, `ssh://git@${sshHost}`);
      } else {
        set(`url.${authed}.insteadOf`, `ssh://git@${sshHost}:${sshPort}`);
      }
    }
    // Only where the variable is set: a file variable with GitLab's CA chain.
    w.raw(
      `if [ -n "\${${TLS_CA_FILE_VARIABLE}:-}" ]; then git config --file ${q} ${shellQuote(`http.${plain}.sslCAInfo`)} "$${TLS_CA_FILE_VARIABLE}"; fi`,
    );
  }
  w.raw(`git config --replace-all include.path ${q} ${shellQuote(`${EXT_CONFIG}$`)}`);
}

/** The scheme and host of the GitLab the job came from (`CI_SERVER_URL`, else the repo URL). */
function httpBase(job: JobPayload): URL | undefined {
  for (const candidate of [jobVariable(job, 'CI_SERVER_URL'), job.git_info.repo_url]) {
    if (!candidate) continue;
    try {
      const u = new URL(candidate);
      if (u.protocol === 'http:' || u.protocol === 'https:') return u;
    } catch {
      // not a URL: a local path
    }
  }
  return undefined;
}

/** `GIT_SUBMODULE_STRATEGY` (`R:shells/abstract.go` writeSubmoduleUpdateCmd). */
function writeSubmodules(w: ScriptWriter, s: GitSettings, extConfig: string): void {
  if (s.submoduleStrategy === undefined) {
    w.raw(
      `printf '%s\\n' ${shellQuote("\x1b[31;1mERROR: unknown GIT_SUBMODULE_STRATEGY: expected either 'normal', 'recursive' or 'none'\x1b[0;m")}`,
    );
    w.raw('exit 1');
    return;
  }
  if (s.submoduleStrategy === 'none') {
    w.notice('Skipping Git submodules setup');
    return;
  }
  if (s.submodulePaths.includes(':(exclude)')) {
    w.raw(
      `printf '%s\\n' ${shellQuote('\x1b[31;1mERROR: GIT_SUBMODULE_PATHS: invalid submodule pathspec ":(exclude)"\x1b[0;m')}`,
    );
    w.raw('exit 1');
    return;
  }
  const recursive = s.submoduleStrategy === 'recursive';
  const depth = s.submoduleDepth;
  w.notice(
    `Updating/initializing submodules${recursive ? ' recursively' : ''}${depth > 0 ? ` with git depth set to ${depth}` : ''}...`,
  );
  const paths = s.submodulePaths.length > 0 ? ['--', ...s.submodulePaths.map(shellQuote)] : [];
  const rec = recursive ? ['--recursive'] : [];
  const sync = ['git submodule sync', ...rec, ...paths].join(' ');
  const update = [
    'git -c include.path="$RUNFLEET_GIT_EXT_CONFIG" submodule update --init',
    ...rec,
    ...(depth > 0 ? ['--depth', String(depth)] : []),
    ...s.submoduleUpdateFlags.map(shellQuote),
    ...paths,
  ].join(' ');
  const foreach = ['git submodule foreach', ...rec].join(' ');
  const clean = `git clean ${(s.cleanFlags.length > 0 ? s.cleanFlags : ['-ffdx']).map(shellQuote).join(' ')}`;
  w.raw(`RUNFLEET_GIT_EXT_CONFIG=${shellQuote(extConfig)}`);
  w.raw('git submodule init');
  w.raw(sync);
  w.raw(`${foreach} ${shellQuote(clean)}`);
  w.raw(`${foreach} 'git reset --hard'`);
  w.raw(`if ${update}; then`);
  w.notice('Updated submodules');
  w.raw(sync);
  w.raw('else');
  w.raw(`printf '%s\\n' ${shellQuote('\x1b[0;33mWARNING: Updating submodules failed. Retrying...\x1b[0;m')}`);
  w.raw(sync);
  w.raw(update);
  w.raw(`${foreach} 'git reset --hard'`);
  w.raw('fi');
  w.raw(`${foreach} ${shellQuote(clean)}`);
  if (!s.lfsSkipSmudge) {
    w.raw('if git lfs version >/dev/null 2>&1; then');
    w.notice('Pulling LFS files...');
    w.raw(`git -c include.path="$RUNFLEET_GIT_EXT_CONFIG" ${foreach.slice(4)} 'git lfs pull'`);
    w.raw('fi');
  }
}
