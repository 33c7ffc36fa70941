/**
 * What `runfleet import` tells the operator about each runner: every setting carried over (and to
 * which fleet field), every one not carried over and why, and every one whose meaning differs in
 * runfleet. Entries name settings, never their values: a config.toml holds tokens, passwords and
 * DSNs, and a report is pasted into tickets and CI logs.
 */

export type Outcome =
  /** A fleet file is written for this runner. */
  | 'imported'
  /** An autoscaler runner that runfleet cannot run yet, or whose settings are unusable. */
  | 'not-imported'
  /** Not an autoscaler runner (shell, docker, kubernetes, docker+machine...): nothing to import. */
  | 'skipped';

export interface CarriedOver {
  /** The config.toml setting, e.g. `runners.autoscaler.policy[0].idle_time`. */
  setting: string;
  /** The fleet field it became, e.g. `policy[0].idle_time`. */
  field: string;
  /** Set when the value changed on the way (a rounded duration, a clamped number). */
  note?: string;
  /** `file:line:col` of the setting, for errors the fleet validator finds in what it became. */
  at?: string;
}

export interface NotCarriedOver {
  setting: string;
  why: string;
}

export interface Differs {
  setting: string;
  how: string;
}

export interface RunnerReport {
  /** The runner's `name` as config.toml has it (or `runners[N]` when it has none). */
  runner: string;
  /** 0-based index among the [[runners]] entries. */
  index: number;
  executor: string;
  outcome: Outcome;
  /** Why the runner is skipped or not imported; file:line:col first when a setting is at fault. */
  reasons: string[];
  fleet?: string;
  /** The fleet file path, as the command writes it. */
  file?: string;
  /** The environment variable the fleet reads its token from. */
  tokenEnv?: string;
  /** Other secrets (the cache's S3 keys) and the environment variable each is read from. */
  secretEnvs?: { field: string; env: string }[];
  /** max_instances × capacity_per_instance of the imported fleet. */
  slots?: number;
  carried: CarriedOver[];
  notCarried: NotCarriedOver[];
  differs: Differs[];
}

export interface ImportReport {
  source: string;
  runners: RunnerReport[];
  /** Settings outside [[runners]] (concurrent, listen_address, ...). */
  global: { notCarried: NotCarriedOver[]; differs: Differs[] };
  warnings: string[];
}

export function renderReport(report: ImportReport): string {
  const out: string[] = [];
  for (const r of report.runners) {
    const head = `runner ${JSON.stringify(r.runner)} (executor ${r.executor})`;
    if (r.outcome === 'imported') out.push(`${head} -> fleet ${r.fleet} in ${r.file}`);
    else out.push(`${head}: ${r.outcome === 'skipped' ? 'skipped' : 'NOT IMPORTED'}`);
    for (const reason of r.reasons) out.push(`  ${reason}`);
    section(
      out,
      'carried over',
      r.carried.map((c) => [c.setting, `-> ${c.field}${c.note ? ` (${c.note})` : ''}`]),
    );
    section(
      out,
      'not carried over',
      r.notCarried.map((n) => [n.setting, n.why]),
    );
    section(
      out,
      'differs in runfleet',
      r.differs.map((d) => [d.setting, d.how]),
    );
    if (r.tokenEnv) {
      out.push(
        `  token: not written; the fleet reads it from $${r.tokenEnv} (set it to this runner's token before runfleet watch)`,
      );
    }
    for (const s of r.secretEnvs ?? []) {
      out.push(
        `  ${s.field}: not written; the fleet reads it from $${s.env} (set it to the value in config.toml before runfleet watch)`,
      );
    }
    out.push('');
  }
  if (report.global.notCarried.length + report.global.differs.length > 0) {
    out.push('global settings');
    section(
      out,
      'not carried over',
      report.global.notCarried.map((n) => [n.setting, n.why]),
    );
    section(
      out,
      'differs in runfleet',
      report.global.differs.map((d) => [d.setting, d.how]),
    );
    out.push('');
  }
  for (const w of report.warnings) out.push(`warning: ${w}`);
  return out.join('\n').trimEnd();
}

function section(out: string[], title: string, rows: [string, string][]): void {
  if (rows.length === 0) return;
  out.push(`  ${title}:`);
  const width = Math.min(56, Math.max(...rows.map(([s]) => s.length)));
  for (const [setting, text] of rows) out.push(`    ${setting.padEnd(width)}  ${text}`);
}
