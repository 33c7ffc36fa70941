/**
 * The job variables that steer how a job runs, read the way GitLab Runner reads them
 * (docs/gitlab-job-api.md §5, "Job settings"): booleans as Go's `strconv.ParseBool`, integers in
 * base 10, flag lists split on white space with `none` meaning no flags at all. A malformed value
 * falls back to the default and yields a warning for the job log, never a failure, except where
 * GitLab Runner fails the job too (an unknown `GIT_SUBMODULE_STRATEGY`).
 */
import type { JobPayload } from '../gitlab/job.js';
import { jobVariable } from './layout.js';

export type GitStrategy = 'fetch' | 'clone' | 'none' | 'empty';
export type SubmoduleStrategy = 'none' | 'normal' | 'recursive';

export interface GitSettings {
  strategy: GitStrategy;
  checkout: boolean;
  /** `undefined`: the value was not one of none/normal/recursive (the job fails in get_sources). */
  submoduleStrategy: SubmoduleStrategy | undefined;
  submodulePaths: string[];
  submoduleDepth: number;
  submoduleUpdateFlags: string[];
  submoduleForceHttps: boolean;
  /** Empty: no clean (`GIT_CLEAN_FLAGS: none`). */
  cleanFlags: string[];
  /** Replace the default `--prune --quiet`; empty with `none`. */
  fetchFlags: string[];
  /** `GIT_LFS_SKIP_SMUDGE` set by the job: no `git lfs pull`. */
  lfsSkipSmudge: boolean;
  depth: number;
  /** 1…10. */
  getSourcesAttempts: number;
  objectFormat: string;
}

/** Go's `strconv.ParseBool`: what GitLab Runner accepts for every boolean setting. */
export function parseGoBool(raw: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(raw)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(raw)) return false;
  return undefined;
}

/** Reads settings and collects warnings about values it could not use. */
export class SettingsReader {
  readonly warnings: string[] = [];

  constructor(private readonly job: JobPayload) {}

  raw(name: string): string {
    return jobVariable(this.job, name) ?? '';
  }

  bool(name: string, def: boolean): boolean {
    const raw = this.raw(name);
    if (raw === '') return def;
    const v = parseGoBool(raw);
    if (v === undefined) {
      this.warnings.push(`${name}: expected bool got "${raw}", using default value: ${def}`);
      return def;
    }
    return v;
  }

  int(name: string, def: number): number {
    const raw = this.raw(name);
    if (raw === '') return def;
    if (!/^[+-]?\d+$/.test(raw)) {
      this.warnings.push(`${name}: expected int got "${raw}", using default value: ${def}`);
      return def;
    }
    return Number(raw);
  }

  /** White-space separated flags; `none` is the empty list; unset is `def`. */
  flags(name: string, def: string[]): string[] {
    const raw = this.raw(name);
    if (raw === '') return def;
    if (raw === 'none') return [];
    return raw.trim().split(/\s+/).filter(Boolean);
  }

  /** Clamps an attempts count to [1, 10], as GitLab Runner does. */
  attempts(name: string, def: number): number {
    const v = this.int(name, def);
    const clamped = Math.max(1, Math.min(10, v));
    if (clamped !== v) {
      this.warnings.push(`${name}: number of attempts out of the range [1, 10], clamping to: ${clamped}`);
    }
    return clamped;
  }
}

export function gitStrategyOf(job: JobPayload, r = new SettingsReader(job)): GitStrategy {
  const v = r.raw('GIT_STRATEGY');
  if (v === 'fetch' || v === 'clone' || v === 'none' || v === 'empty') return v;
  const def = job.allow_git_fetch ? 'fetch' : 'clone';
  if (v !== '') {
    r.warnings.push(
      `GIT_STRATEGY: expected either 'clone', 'fetch', 'none' or 'empty' got "${v}", using default value '${def}'`,
    );
  }
  return def;
}

/** Every git setting of `job`, with GitLab Runner's defaults. */
export function gitSettings(job: JobPayload, r = new SettingsReader(job)): GitSettings {
  const strategy = gitStrategyOf(job, r);
  const noRepo = strategy === 'none' || strategy === 'empty';
  const gitDepth = r.int('GIT_DEPTH', job.git_info.depth ?? 0);
  const rawSubmodule = r.raw('GIT_SUBMODULE_STRATEGY');
  let submoduleStrategy: SubmoduleStrategy | undefined;
  if (rawSubmodule === '' || rawSubmodule === 'none') submoduleStrategy = 'none';
  else if (rawSubmodule === 'normal' || rawSubmodule === 'recursive') submoduleStrategy = rawSubmodule;
  return {
    strategy,
    checkout: noRepo ? false : r.bool('GIT_CHECKOUT', true),
    submoduleStrategy: noRepo ? 'none' : submoduleStrategy,
    submodulePaths: r.raw('GIT_SUBMODULE_PATHS').trim().split(/\s+/).filter(Boolean),
    submoduleDepth: r.int('GIT_SUBMODULE_DEPTH', gitDepth),
    submoduleUpdateFlags: r.flags('GIT_SUBMODULE_UPDATE_FLAGS', []),
    submoduleForceHttps: r.bool('GIT_SUBMODULE_FORCE_HTTPS', false),
    cleanFlags: r.flags('GIT_CLEAN_FLAGS', ['-ffdx']),
    fetchFlags: r.flags('GIT_FETCH_EXTRA_FLAGS', ['--prune', '--quiet']),
    lfsSkipSmudge: r.bool('GIT_LFS_SKIP_SMUDGE', false),
    depth: gitDepth,
    getSourcesAttempts: r.attempts('GET_SOURCES_ATTEMPTS', 1),
    objectFormat: job.git_info.repo_object_format || 'sha1',
  };
}

/**
 * `CI_DEBUG_TRACE` as GitLab Runner reads it (`strconv.ParseBool`): `1`, `t`, `TRUE`, `True` …
 * all turn it on.
 */
export function debugTraceEnabled(job: JobPayload): boolean {
  return parseGoBool(jobVariable(job, 'CI_DEBUG_TRACE') ?? '') ?? false;
}

/**
 * A stage timeout variable (`RUNNER_SCRIPT_TIMEOUT`, `RUNNER_AFTER_SCRIPT_TIMEOUT`) in Go's
 * duration syntax (`1h30m`, `90s`, `1.5h`, `500ms`). Undefined when unset or unusable; a warning
 * names a value that was ignored.
 */
export function stageTimeoutMs(job: JobPayload, name: string, warnings: string[]): number | undefined {
  const raw = (jobVariable(job, name) ?? '').trim();
  if (raw === '') return undefined;
  const ms = parseGoDuration(raw);
  if (ms === undefined) {
    warnings.push(`Ignoring malformed ${name} timeout: ${raw}`);
    return undefined;
  }
  if (ms < 0) {
    warnings.push(`Ignoring relative ${name} timeout: ${raw}`);
    return undefined;
  }
  return ms === 0 ? undefined : ms;
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Go's `time.ParseDuration`, in milliseconds. */
export function parseGoDuration(raw: string): number | undefined {
  let s = raw;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') return undefined;
  let total = 0;
  const re = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/;
  while (s.length > 0) {
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    s = s.slice(m[0].length);
  }
  return sign * total;
}
