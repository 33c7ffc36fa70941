/**
 * Reading the fleets directory into the daemon's `FleetConfig`. An unreadable directory keeps
 * every definition as it is; an invalid file keeps its fleets on their last good definition. Each
 * new file error is logged once (not again on every reload while it stays), and the per-file error
 * counts go to the `runfleet_config_errors` metric.
 */
import { formatIssue, type LoadResult } from '../config/index.js';
import { asError } from '../errors.js';
import type { FleetConfig } from './fleet-config.js';
import type { Logger } from '../util/logger.js';
import type { DaemonMetrics } from './metrics.js';

export interface ConfigReloadDeps {
  /** Reads the fleets directory. */
  load: () => Promise<LoadResult>;
  config: FleetConfig;
  logger: Logger;
  metrics: DaemonMetrics;
}

/** Never throws: a failure to read is logged and changes nothing. */
export async function reloadFleetFiles(deps: ConfigReloadDeps): Promise<void> {
  const { config, logger } = deps;
  let result: LoadResult;
  try {
    result = await deps.load();
  } catch (e) {
    // The directory itself is unreadable: keep everything as it is.
    logger.error('cannot read fleet files; keeping the current definitions', {
      error: asError(e).message,
    });
    return;
  }
  const before = new Set(config.errors().map(formatIssue));
  config.update(result);
  const errors = config.errors();
  for (const issue of errors) {
    const text = formatIssue(issue);
    if (before.has(text)) continue;
    logger.error('invalid fleet file: its fleets keep their last good definition', {
      event: 'config_error',
      file: issue.file,
      line: issue.line,
      col: issue.col,
      field: issue.pointer,
      error: issue.message,
    });
  }
  const byFile = new Map<string, number>();
  for (const f of result.files) byFile.set(f.file, f.errors.length);
  deps.metrics.setConfigErrors(byFile);
  logger.info('fleet files loaded', {
    event: 'config',
    files: result.files.length,
    fleets: result.fleets.length,
    errors: errors.length,
  });
}
