/**
 * GitLab Runner feature flags that a job can set as variables and that runfleet honours
 * (docs/gitlab-job-api.md §5, "Feature flags"). Each is resolved from the job's variables with
 * `strconv.ParseBool` (anything else keeps the default, with a warning) and exported back into
 * the job with its resolved value, as GitLab Runner does, so scripts see what is in force. `FF_*`
 * variables that are not listed here are the job's own and pass through untouched.
 */
import type { JobPayload, JobVariable } from '../gitlab/job.js';
import { parseGoBool } from './build-settings.js';
import { jobVariable } from './layout.js';

export interface FeatureFlag {
  name: string;
  /** GitLab Runner's default (`R:helpers/featureflags/flags.go`). */
  defaultValue: boolean;
  description: string;
}

/** The flags runfleet honours; add a row where runfleet implements another one. */
export const FEATURE_FLAGS: readonly FeatureFlag[] = [
  {
    name: 'FF_TIMESTAMPS',
    defaultValue: true,
    description:
      'Every line of the job log starts with its RFC 3339 time (µs) and stream, as GitLab renders it.',
  },
];

const NAMES = new Set(FEATURE_FLAGS.map((f) => f.name));

export function isHonouredFeatureFlag(key: string): boolean {
  return NAMES.has(key);
}

/** The resolved value of every honoured flag, plus a warning for each value that did not parse. */
export function resolveFeatureFlags(job: Pick<JobPayload, 'variables'>): {
  flags: Record<string, boolean>;
  warnings: string[];
} {
  const flags: Record<string, boolean> = {};
  const warnings: string[] = [];
  for (const f of FEATURE_FLAGS) {
    const raw = jobVariable(job as JobPayload, f.name);
    const parsed = raw === undefined || raw === '' ? undefined : parseGoBool(raw);
    if (raw !== undefined && raw !== '' && parsed === undefined) {
      warnings.push(`${f.name}: could not parse feature flag, expected bool, got ${raw}`);
    }
    flags[f.name] = parsed ?? f.defaultValue;
  }
  return { flags, warnings };
}

export function featureFlagOn(job: Pick<JobPayload, 'variables'>, name: string): boolean {
  return resolveFeatureFlags(job).flags[name] ?? false;
}

/** The honoured flags as runner variables (`true`/`false`), to export before the job's own. */
export function featureFlagVariables(job: JobPayload): JobVariable[] {
  const { flags } = resolveFeatureFlags(job);
  return FEATURE_FLAGS.map((f) => ({ key: f.name, value: String(flags[f.name]), public: true }));
}
