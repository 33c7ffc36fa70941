import { formatIssue, loadFleets } from '../../config/index.js';
import { ErrorCode, FleetError } from '../../errors.js';
import type { DesiredFleet } from '../../model/fleet.js';
import type { Io } from '../io.js';

/**
 * Loads the fleets directory for plan and apply. Any invalid file stops the command before it
 * touches the store or a provider: a plan from half a configuration would destroy the other half.
 */
export async function loadDesired(dir: string, io: Io): Promise<DesiredFleet[]> {
  const loaded = await loadFleets(dir);
  for (const w of loaded.warnings) io.err(`warning: ${formatIssue(w)}`);
  if (loaded.errors.length > 0) {
    for (const e of loaded.errors) io.err(formatIssue(e));
    throw new FleetError(
      ErrorCode.CONFIG_INVALID,
      `${loaded.errors.length} error(s) in ${dir}; nothing was planned`,
      {
        hint: 'runfleet validate shows the same errors; fix them and run again',
      },
    );
  }
  return loaded.fleets;
}
