/**
 * GitLab Runner config.toml -> fleet files and a report. Pure: the CLI reads the file, checks what
 * it may overwrite and writes. Each generated fleet is validated by the real fleet loader before it
 * is offered, so an import never writes a file `runfleet validate` refuses.
 */
import { join } from 'node:path';
import { loadFleetsFromText, type ConfigIssue } from '../config/index.js';
import { fieldPath } from '../config/issues.js';
import { DEFAULT_CHECK_INTERVAL } from '../model/fleet.js';
import { convertRunner } from './convert-runner.js';
import { fleetFileText } from './fleet-file.js';
import { cacheKeyEnvFor, fleetNameFor, tokenEnvFor, uniqueName } from './names.js';
import { KEY_FROM_CONFIG } from './convert-cache.js';
import type { ImportReport, NotCarriedOver, RunnerReport } from './report.js';
import { Section, isTable } from './table.js';
import { parseConfigToml } from './toml-source.js';

export interface ImportInput {
  /** The config.toml path as messages show it. */
  file: string;
  /** The config.toml path for the files' header (absolute). */
  sourcePath: string;
  text: string;
  /** Directory the fleet files go to, as paths are shown and written. */
  outDir: string;
  /** `$schema` path for the header, relative to `outDir`. */
  schemaPath: string;
  now: Date;
  /** Region for AWS runners whose plugin_config has none. */
  region?: string;
  /** Fleet names defined in `outDir` by files this import would not overwrite. */
  takenNames?: ReadonlySet<string>;
}

export interface PlannedFile {
  path: string;
  fleet: string;
  runner: string;
  text: string;
}

export interface ImportResult {
  files: PlannedFile[];
  report: ImportReport;
  /** Every docker-autoscaler / instance runner was imported, and there was at least one. */
  complete: boolean;
}

const GLOBAL_NOT_CARRIED: Record<string, string> = {
  listen_address: 'use runfleet watch --listen',
  shutdown_timeout: 'use runfleet watch --grace',
  log_level: 'use runfleet watch --log-level',
  log_format: 'runfleet always logs JSON',
  sentry_dsn: 'runfleet has no Sentry reporting',
  session_server: 'runfleet has no interactive web terminal',
};

/** @throws TomlSyntaxError when the file is not TOML. */
export function importConfig(input: ImportInput): ImportResult {
  const source = parseConfigToml(input.file, input.text);
  const errors: string[] = [];
  const root = new Section(source, '', '', source.data, errors);
  const report: ImportReport = {
    source: input.file,
    runners: [],
    global: { notCarried: [], differs: [] },
    warnings: [],
  };
  const concurrent = root.integer('concurrent');
  const checkInterval = root.integer('check_interval');
  const runnersValue = root.raw('runners');
  const runnerTables = Array.isArray(runnersValue) ? runnersValue.filter(isTable) : [];
  if (runnersValue !== undefined && runnerTables.length === 0) {
    errors.push(root.problem('runners', 'runners must be a list of [[runners]] tables'));
  }
  const taken = new Set(input.takenNames ?? []);
  const files: PlannedFile[] = [];
  runnerTables.forEach((table, index) => {
    const runnerErrors: string[] = [];
    const section = new Section(source, 'runners', `runners[${index}]`, table, runnerErrors);
    const converted = convertRunner(
      section,
      index,
      input.region === undefined ? {} : { region: input.region },
    );
    report.runners.push(converted.report);
    if (!converted.fleet) return;
    carryCheckInterval(converted.fleet, converted.report, root, checkInterval);
    const planned = nameAndRender(converted.fleet, converted.report, input, taken);
    const invalid = validationProblems(planned, converted.report);
    if (invalid.length > 0) {
      converted.report.outcome = 'not-imported';
      converted.report.reasons.push(...invalid);
      delete converted.report.fleet;
      delete converted.report.file;
      delete converted.report.tokenEnv;
      delete converted.report.secretEnvs;
      return;
    }
    files.push(planned);
  });
  report.global.notCarried.push(...globalLeftovers(root));
  report.warnings.push(...errors);
  if (concurrent !== undefined) checkConcurrent(report, concurrent);
  if (files.length > 0) checkIntervalDiffers(report, checkInterval);
  const autoscalers = report.runners.filter((r) => r.outcome !== 'skipped');
  if (runnerTables.length === 0 || autoscalers.length === 0) {
    report.warnings.push(
      `${input.file} has no [[runners]] entry with executor "docker-autoscaler" or "instance": nothing to import`,
    );
  }
  const complete = autoscalers.length > 0 && autoscalers.every((r) => r.outcome === 'imported');
  return { files, report, complete };
}

function nameAndRender(
  fleet: Record<string, unknown>,
  report: RunnerReport,
  input: ImportInput,
  taken: Set<string>,
): PlannedFile {
  const base = fleetNameFor(
    report.runner === `runners[${report.index}]` ? undefined : report.runner,
    `runner-${report.index + 1}`,
  );
  const name = uniqueName(base, taken);
  if (name !== base) {
    report.differs.push({
      setting: 'runners.name',
      how: `fleet name ${base} was taken; this fleet is ${name}`,
    });
  }
  const tokenEnv = tokenEnvFor(name);
  const gitlab = { ...(fleet.gitlab as Record<string, unknown>), token: { env: tokenEnv } };
  const cache = namedCacheKeys(fleet.cache, name, report);
  const path = join(input.outDir, `${name}.yaml`);
  report.fleet = name;
  report.file = path;
  report.tokenEnv = tokenEnv;
  const text = fleetFileText(
    { ...fleet, name, gitlab, ...(cache ? { cache } : {}) },
    {
      source: input.sourcePath,
      runner: report.runner,
      date: input.now.toISOString().slice(0, 10),
      schema: input.schemaPath,
      tokenEnv,
    },
  );
  return { path, fleet: name, runner: report.runner, text };
}

/** The cache block with the S3 keys config.toml had turned into `{env: ...}` references of this fleet. */
function namedCacheKeys(
  cache: unknown,
  name: string,
  report: RunnerReport,
): Record<string, unknown> | undefined {
  if (cache === undefined) return undefined;
  const block = cache as Record<string, unknown>;
  const s3 = block.s3 as Record<string, unknown> | undefined;
  if (!s3) return block;
  const named = { ...s3 };
  for (const field of ['access_key', 'secret_key'] as const) {
    if (named[field] !== KEY_FROM_CONFIG) continue;
    const env = cacheKeyEnvFor(name, field);
    named[field] = { env };
    (report.secretEnvs ??= []).push({ field: `cache.s3.${field}`, env });
  }
  return { ...block, s3: named };
}

/** The fleet loader's errors on a generated file, pinned to the config.toml setting they came from. */
function validationProblems(planned: PlannedFile, report: RunnerReport): string[] {
  const loaded = loadFleetsFromText(planned.path, planned.text);
  return loaded.errors.map((issue: ConfigIssue) => {
    const field = fieldPath(issue.pointer);
    const from = report.carried.find(
      (c) => c.field.split(' ')[0] === field || field.startsWith(`${c.field.split(' ')[0]}.`),
    );
    const at = from?.at ?? report.runner;
    return `${at}: ${from?.setting ?? field}: ${issue.message}${issue.hint ? ` (${issue.hint})` : ''}`;
  });
}

function globalLeftovers(root: Section): NotCarriedOver[] {
  return root.leftover().map((key) => ({
    setting: key,
    why: GLOBAL_NOT_CARRIED[key] ?? 'the fleet schema has no such setting',
  }));
}

/**
 * GitLab Runner's global `check_interval` (whole seconds; 0 or less means its default, 3) becomes
 * every fleet's `gitlab.check_interval`. Unset, the fleet gets runfleet's shorter default.
 */
function carryCheckInterval(
  fleet: Record<string, unknown>,
  report: RunnerReport,
  root: Section,
  seconds: number | undefined,
): void {
  const gitlab = fleet.gitlab as Record<string, unknown> | undefined;
  if (!gitlab || seconds === undefined || seconds <= 0) return;
  gitlab.check_interval = `${seconds}s`;
  const at = root.problem('check_interval', '').replace(/: $/, '');
  report.carried.push({ setting: 'check_interval', field: 'gitlab.check_interval', at });
}

function checkIntervalDiffers(report: ImportReport, seconds: number | undefined): void {
  if (seconds !== undefined && seconds > 0) return;
  report.global.differs.push({
    setting: 'check_interval',
    how: `${seconds === undefined ? 'not set' : `${seconds}`}: GitLab Runner waited its default 3s after a job request that found nothing; runfleet waits ${DEFAULT_CHECK_INTERVAL} (gitlab.check_interval), so an empty queue is asked more often; set gitlab.check_interval: 3s to keep the old rate`,
  });
}

/** GitLab caps all runners of a manager at `concurrent` jobs; runfleet has no such global cap. */
function checkConcurrent(report: ImportReport, concurrent: number): void {
  let total = 0;
  for (const r of report.runners) {
    if (r.outcome !== 'imported') continue;
    total += r.slots ?? 0;
  }
  if (total === 0) return;
  if (concurrent < total) {
    report.warnings.push(
      `concurrent = ${concurrent} is less than the imported fleets' total capacity of ${total} job slots (sum of max_instances × capacity_per_instance): GitLab ran at most ${concurrent} jobs at once, runfleet has no global limit and runs up to ${total}; lower max_instances to keep the old ceiling`,
    );
  }
  report.global.differs.push({
    setting: 'concurrent',
    how: 'runfleet has no manager-wide job limit: each fleet is bounded by max_instances × capacity_per_instance',
  });
}
