import { formatIssue, loadFleets } from '../../config/index.js';
import type { GlobalOptions } from '../root.js';
import type { Io } from '../io.js';

/** `runfleet validate`: every error in every fleet file at once. Exit 0 valid, 1 invalid. */
export async function validate(opts: GlobalOptions, io: Io): Promise<number> {
  const loaded = await loadFleets(opts.dir);
  for (const w of loaded.warnings) io.err(`warning: ${formatIssue(w)}`);
  for (const e of loaded.errors) io.err(formatIssue(e));
  const files = loaded.files.length;
  if (loaded.errors.length > 0) {
    io.err(`\n${loaded.errors.length} error(s) in ${opts.dir}; nothing was changed.`);
    return 1;
  }
  io.out(`${loaded.fleets.length} fleet(s) in ${files} file(s) under ${opts.dir} are valid.`);
  return 0;
}
