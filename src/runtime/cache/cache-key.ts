/**
 * Which cache archives a job's `cache[]` entry restores and saves, with GitLab Runner's rules
 * (docs/caches.md): the key (default `<job name>/<ref>`, `$VAR`s expanded, sanitised), the policy
 * (pull, push, pull-push), `when` (on_success, on_failure, always), the fallback keys in order, then
 * `CACHE_FALLBACK_KEY` (refused when it ends in `-protected`), `RESTORE_CACHE_ATTEMPTS` and
 * `CACHE_REQUEST_TIMEOUT`; and the object names GitLab Runner gives archives in a bucket, so both
 * share one. Pure.
 */
import { posix } from 'node:path';
import type { JobCache, JobPayload } from '../gitlab/job.js';
import { expandValue } from '../script/variables.js';

export type CachePolicy = 'pull' | 'push' | 'pull-push';

/** One cache entry of a job, resolved. */
export interface ResolvedCache {
  /** The sanitised key (GitLab's "human key"), as the log shows it. */
  key: string;
  /** The keys tried on restore after `key`, in order (fallback_keys, then CACHE_FALLBACK_KEY). */
  fallbackKeys: string[];
  paths: string[];
  untracked: boolean;
  policy: CachePolicy;
  when: 'on_success' | 'on_failure' | 'always';
  /** Lines for the job log (sanitised keys, a refused fallback key), GitLab's wording. */
  warnings: string[];
}

/** An entry that cannot be used, with the log line saying why (GitLab's notice). */
export interface SkippedCache {
  skipped: string;
  /** The job fails (an unknown policy fails the job in GitLab Runner). */
  fatal?: boolean;
  warnings: string[];
}

const PERCENT = /%2f|%2e|\\/gi;

/**
 * GitLab Runner's `cachekey.Sanitize`: `%2f`, `%2e` and `\` decoded to `/` and `.`, `.` and `..`
 * resolved inside the key (it can never climb out), trailing spaces of the last segments dropped.
 * Undefined when nothing is left.
 */
export function sanitizeCacheKey(raw: string): string | undefined {
  if (raw === '') return undefined;
  const decoded = raw.replace(PERCENT, (m) => (m === '\\' || m.toLowerCase() === '%2f' ? '/' : '.'));
  const parts = posix.normalize(`/${decoded}`).slice(1).split('/');
  // normalize keeps a trailing slash; drop empty and blank trailing segments.
  let n = parts.length;
  while (n > 0) {
    parts[n - 1] = parts[n - 1]!.replace(/\s+$/u, '');
    if (parts[n - 1] !== '') break;
    n--;
  }
  const key = parts.slice(0, n).join('/');
  return key === '' ? undefined : key;
}

/** A key with the job's variables expanded and sanitised, and the warning GitLab prints for it. */
function cacheKey(raw: string, vars: ReadonlyMap<string, string>): { key?: string; warning?: string } {
  const expanded = expandValue(raw, vars);
  const key = sanitizeCacheKey(expanded);
  if (key === undefined) {
    return expanded === '' ? {} : { warning: `cache key ${JSON.stringify(expanded)} could not be sanitized` };
  }
  return key === expanded
    ? { key }
    : { key, warning: `cache key ${JSON.stringify(expanded)} sanitized to ${JSON.stringify(key)}` };
}

/** Does the entry cache anything at all (GitLab skips entries without paths and untracked)? */
export function cachesSomething(entry: JobCache): boolean {
  return (entry.paths ?? []).some((p) => p !== '') || entry.untracked === true;
}

/**
 * Resolves `entry` of `job` with the job's variables `vars` (all of them, expanded). The default
 * key is `<job name>/<ref>`, as GitLab Runner's.
 */
export function resolveCache(
  job: JobPayload,
  entry: JobCache,
  vars: ReadonlyMap<string, string>,
): ResolvedCache | SkippedCache {
  const warnings: string[] = [];
  const userKey = entry.key ?? '';
  const main =
    userKey !== ''
      ? cacheKey(userKey, vars)
      : { key: sanitizeCacheKey(posix.join('/', job.job_info.name, job.git_info.ref).slice(1)) };
  if (main.warning) warnings.push(main.warning);
  const policy = expandValue(entry.policy ?? '', vars);
  if (main.key === undefined)
    return { skipped: 'Skipping cache extraction due to empty cache key', warnings };
  if (policy !== '' && policy !== 'pull' && policy !== 'push' && policy !== 'pull-push') {
    return { skipped: `unknown cache policy ${policy} for ${main.key}`, fatal: true, warnings };
  }
  const fallbackKeys: string[] = [];
  for (const raw of entry.fallback_keys ?? []) {
    const k = cacheKey(raw, vars);
    if (k.warning) warnings.push(k.warning);
    if (k.key !== undefined) fallbackKeys.push(k.key);
  }
  const global = cacheKey(vars.get('CACHE_FALLBACK_KEY') ?? '', vars);
  if (global.warning) warnings.push(global.warning);
  if (global.key?.endsWith('-protected')) {
    // A fallback to a protected ref's cache would let an unprotected ref read it (GitLab's rule).
    warnings.push(`CACHE_FALLBACK_KEY ${JSON.stringify(global.key)} not allowed to end in "-protected"`);
  } else if (global.key !== undefined) {
    fallbackKeys.push(global.key);
  }
  const when = cacheWhen(entry.when);
  return {
    key: main.key,
    fallbackKeys,
    paths: (entry.paths ?? []).filter((p) => p !== '').map((p) => expandValue(p, vars)),
    untracked: entry.untracked === true,
    policy: policy === '' ? 'pull-push' : policy,
    when,
    warnings,
  };
}

export function isSkipped(c: ResolvedCache | SkippedCache): c is SkippedCache {
  return 'skipped' in c;
}

/** `when` as GitLab reads it: `on_failure`, `always`, else (also empty) `on_success`. */
export function cacheWhen(when: string | undefined): ResolvedCache['when'] {
  return when === 'on_failure' || when === 'always' ? when : 'on_success';
}

/** Whether an entry with `when` is archived after a job that succeeded (`success`) or not. */
export function shouldArchive(when: ResolvedCache['when'], success: boolean): boolean {
  return success ? when !== 'on_failure' : when !== 'on_success';
}

/** `RESTORE_CACHE_ATTEMPTS`: 1 by default, clamped to 1..10 as GitLab Runner does. */
export function restoreAttempts(vars: ReadonlyMap<string, string>): number {
  const n = Number.parseInt(vars.get('RESTORE_CACHE_ATTEMPTS') ?? '', 10);
  if (!Number.isFinite(n)) return 1;
  return Math.min(10, Math.max(1, n));
}

/** `CACHE_REQUEST_TIMEOUT` in minutes (default 10), as milliseconds. */
export function cacheRequestTimeoutMs(vars: ReadonlyMap<string, string>): number {
  const n = Number.parseInt(vars.get('CACHE_REQUEST_TIMEOUT') ?? '', 10);
  return (Number.isFinite(n) && n > 0 ? n : 10) * 60_000;
}

/**
 * GitLab Runner's object name for `key` in a bucket: `[<path>/][runner/<short token>/]project/<id>/<key>`
 * (`shared` drops the runner segment). Undefined when the key would leave the project's prefix.
 */
export function cacheObjectName(
  opts: { path: string; shared: boolean; shortToken: string },
  projectId: number,
  key: string,
): string | undefined {
  const namespace = opts.shared ? '' : posix.join('runner', opts.shortToken);
  const base = posix.join(opts.path || '.', namespace || '.', 'project', String(projectId));
  const full = posix.join(base, key);
  return full.startsWith(`${base}/`) ? full.replace(/^\/+/, '') : undefined;
}

/**
 * Where GitLab Runner's non-distributed cache keeps `key`'s archive, relative to the cache dir:
 * `<project path>/<key>/cache.zip`. Undefined when the key would leave the project's directory.
 */
export function localCachePath(projectPath: string, key: string): string | undefined {
  const full = posix.join(projectPath, key, 'cache.zip');
  return full.startsWith(`${projectPath}/`) && !full.startsWith('/') ? full : undefined;
}
