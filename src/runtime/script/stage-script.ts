/**
 * From a job payload to its stage scripts (docs/gitlab-job-api.md §5, "Stages in order"). Pure: the
 * same payload and context always give the same text. Which machine runs which stage is the
 * executor's business; the context carries the paths valid there.
 */
import type { JobPayload } from '../gitlab/job.js';
import { debugTraceEnabled } from './build-settings.js';
import { gitStrategy, writeClearWorktree, writeGetSources } from './git-sources.js';
import { ScriptWriter } from './script-writer.js';
import { shellQuote } from './shell-quote.js';
import { jobVariables, type VariableContext } from './variables.js';

/** A stage of a job; `step_<name>` for each step other than `after_script`, in payload order. */
export type StageName =
  'prepare_script' | 'get_sources' | 'after_script' | 'cleanup_file_variables' | `step_${string}`;

export interface StageScriptContext extends VariableContext {
  /** The first stage of the job that runs a script: it starts `GITLAB_ENV` empty. */
  startsJob?: boolean;
}

/** Git settings every get_sources gets (§5, "Git"): never prompt for credentials. */
const GIT_ENV = [
  { key: 'GIT_TERMINAL_PROMPT', value: '0' },
  { key: 'GCM_INTERACTIVE', value: 'Never' },
];

/** Base name of the `GITLAB_ENV` file under the tmp dir (GitLab Runner's name). */
export const GITLAB_ENV_FILE = 'gitlab_runner_env';

/** The job's step stages (`step_script`, `step_release`, …) in payload order. */
export function stepStages(job: JobPayload): StageName[] {
  return job.steps.filter((s) => s.name !== 'after_script').map((s) => `step_${s.name}` as StageName);
}

/** Whether the job has an `after_script` with at least one command. */
export function hasAfterScript(job: JobPayload): boolean {
  return job.steps.some((s) => s.name === 'after_script' && s.script.length > 0);
}

/**
 * get_sources has nothing to run: `GIT_STRATEGY: none`. Its hooks do not run then either, as in
 * GitLab Runner (`guardGetSourcesScriptHooks`: none and empty skip both hooks).
 */
function sourcesSkipped(job: JobPayload): boolean {
  return gitStrategy(job) === 'none';
}

/**
 * Whether the script of `stage` may run in the shell of the job's session itself, without a
 * subshell of its own (a process fewer): runfleet's own commands that never `exit`, set no option
 * and leave nothing a later stage would see. cleanup_file_variables is the job's last stage.
 */
export function runsInSessionShell(stage: StageName): boolean {
  return stage === 'cleanup_file_variables';
}

/**
 * Whether `stage` has anything to run on the instance. get_sources without sources only prints
 * its notices (the step scripts then create the project directory). cleanup_file_variables always
 * runs: every stage may have written `GITLAB_ENV` under the tmp dir.
 */
export function stageHasWork(job: JobPayload, stage: StageName): boolean {
  if (stage === 'get_sources') return !sourcesSkipped(job);
  return true;
}

const notice = (text: string) => `\x1b[32;1m${text}\x1b[0;m\n`;

/** What a stage without work prints, as its script would have. */
export function skippedStageOutput(job: JobPayload, stage: StageName): string {
  if (stage !== 'get_sources') return '';
  return (
    notice('Skipping Git repository setup') +
    notice('Skipping Git checkout') +
    notice('Skipping Git submodules setup')
  );
}

function stepCommands(job: JobPayload, stage: StageName): string[] {
  const name = stage === 'after_script' ? 'after_script' : stage.slice('step_'.length);
  return job.steps.find((s) => s.name === name)?.script ?? [];
}

/**
 * The script of `stage` for `job`: the wrapper, the variable exports, then the stage's commands.
 * `after_script` sees `ctx.jobStatus` as `CI_JOB_STATUS`; the others should pass `running`.
 */
export function buildStageScript(job: JobPayload, stage: StageName, ctx: StageScriptContext): string {
  const w = new ScriptWriter();
  const { layout } = ctx;

  if (stage === 'cleanup_file_variables') {
    // Needs no variables (so none are assembled): it only removes what the other stages wrote.
    writeCleanup(w, layout.tmpDir);
    return w.plain();
  }
  const vars = jobVariables(job, ctx);

  // The directories the stage needs, with one mkdir only when one is missing (a later job in the
  // same slot finds them). Without a get_sources run nothing made the project directory yet.
  const dirs = [layout.tmpDir];
  if (stage !== 'prepare_script' && stage !== 'get_sources' && sourcesSkipped(job))
    dirs.push(layout.projectDir);
  w.raw(
    `${dirs.map((d) => `[ -d ${shellQuote(d)} ]`).join(' && ')} || mkdir -p ${dirs.map(shellQuote).join(' ')}`,
  );
  w.exportVariables(stage === 'get_sources' ? [...vars, ...GIT_ENV] : vars, layout.tmpDir);
  // GITLAB_ENV: `KEY=value` lines a stage appends are exported into every later stage (§5).
  const envFile = `${layout.tmpDir}/${GITLAB_ENV_FILE}`;
  w.raw(`export GITLAB_ENV=${shellQuote(envFile)}`);
  // The job's first stage, and the first get_sources on the instance, start with an empty file
  // (an earlier job that was killed may have left one); later stages keep what was written.
  const starts = ctx.startsJob || (stage === 'get_sources' && (ctx.getSourcesAttempt ?? 1) === 1);
  w.raw(starts ? ': > "$GITLAB_ENV"' : ': >> "$GITLAB_ENV"');
  w.raw(
    'while read -r _runner_env_line || [ -n "$_runner_env_line" ]; do export "$_runner_env_line"; done < "$GITLAB_ENV"',
  );
  // After the exports, so a debug trace does not print every secret the job has.
  if (debugTraceEnabled(job)) w.raw('set -o xtrace');

  switch (stage) {
    case 'prepare_script':
      w.raw(`printf 'Running on %s...\\n' "$(hostname 2>/dev/null || uname -n 2>/dev/null || echo unknown)"`);
      break;
    case 'get_sources':
      if ((ctx.getSourcesAttempt ?? 1) === 2) writeClearWorktree(w, layout);
      // hooks:pre_get_sources_script and post_get_sources_script run around the fetch, as user
      // commands (echoed, failing the stage on a non-zero exit); not for GIT_STRATEGY none/empty.
      if (gitStrategy(job) !== 'empty' && hookCommands(job, 'pre_get_sources_script').length > 0) {
        const builds = shellQuote(layout.buildsDir);
        w.raw(`[ -d ${builds} ] || mkdir -p ${builds}`).cd(layout.buildsDir);
        for (const cmd of hookCommands(job, 'pre_get_sources_script')) w.userCommand(cmd);
      }
      writeGetSources(w, job, layout);
      if (gitStrategy(job) !== 'empty' && hookCommands(job, 'post_get_sources_script').length > 0) {
        w.cd(layout.projectDir);
        for (const cmd of hookCommands(job, 'post_get_sources_script')) w.userCommand(cmd);
      }
      break;
    default:
      w.cd(layout.projectDir);
      for (const cmd of stepCommands(job, stage)) w.userCommand(cmd);
  }
  return w.finish();
}

/**
 * cleanup_file_variables: the tmp dir goes with everything in it, unless all it holds is an empty
 * `GITLAB_ENV` file, which stays for the slot's next job (GitLab Runner removes the files it knows
 * and keeps the dir). Only shell builtins look, so a job that wrote nothing there costs no process.
 */
function writeCleanup(w: ScriptWriter, tmpDir: string): void {
  const tmp = shellQuote(tmpDir);
  const envFile = shellQuote(`${tmpDir}/${GITLAB_ENV_FILE}`);
  w.raw(`if [ -d ${tmp} ]; then`);
  w.raw(`  _runner_keep=1; if [ -s ${envFile} ]; then _runner_keep=; fi`);
  w.raw(`  for _runner_f in ${tmp}/* ${tmp}/.[!.]* ${tmp}/..?*; do`);
  w.raw(
    `    if [ "$_runner_f" != ${envFile} ] && { [ -e "$_runner_f" ] || [ -L "$_runner_f" ]; }; then _runner_keep=; fi`,
  );
  w.raw('  done');
  w.raw(`  if [ -z "$_runner_keep" ]; then rm -rf ${tmp}; fi`);
  w.raw('fi');
}

function hookCommands(job: JobPayload, name: 'pre_get_sources_script' | 'post_get_sources_script'): string[] {
  return job.hooks?.find((h) => h.name === name)?.script ?? [];
}
