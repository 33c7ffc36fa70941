/**
 * The text of an imported fleet file: a header (where it came from, when, the editor schema line
 * the README recommends) and the fleet as YAML in the order the README's table lists fields. The
 * header's marker line is how a later import recognises a file it may overwrite.
 */
import { stringify } from 'yaml';
import type { FleetObject } from './context.js';

const FIELD_ORDER = [
  'name',
  'provider',
  'executor',
  'docker',
  'capacity_per_instance',
  'max_instances',
  'max_use_count',
  'instance_ready_command',
  'delete_instances_on_shutdown',
  'connector',
  'policy',
  'scale_throttle',
  'gitlab',
];

export const MARKER = '# runfleet-import-runner: ';

export interface FleetFileHeader {
  /** The config.toml path, as an absolute path. */
  source: string;
  runner: string;
  /** Import date, YYYY-MM-DD (UTC). */
  date: string;
  /** `$schema` path relative to the fleet file's directory. */
  schema: string;
  tokenEnv: string;
}

export function fleetFileText(fleet: FleetObject, header: FleetFileHeader): string {
  const ordered: FleetObject = {};
  for (const key of FIELD_ORDER) if (fleet[key] !== undefined) ordered[key] = fleet[key];
  for (const key of Object.keys(fleet)) if (!(key in ordered)) ordered[key] = fleet[key];
  const lines = [
    `# yaml-language-server: $schema=${header.schema}`,
    `# Imported by \`runfleet import\` on ${header.date} from ${JSON.stringify(header.source)},`,
    `# runner ${JSON.stringify(header.runner)}. Review it, then run \`runfleet plan\`.`,
    `# The token is not written here: set ${header.tokenEnv} for runfleet watch.`,
    // A later import of the same runner may overwrite this file; anything else needs --force.
    `${MARKER}${JSON.stringify(header.runner)}`,
  ];
  return `${lines.join('\n')}\n${stringify(ordered, { lineWidth: 0 })}`;
}

/** The runner a previous import wrote `text` for, or undefined when no import wrote it. */
export function importedRunnerOf(text: string): string | undefined {
  for (const line of text.split('\n', 20)) {
    if (!line.startsWith(MARKER)) continue;
    try {
      const v: unknown = JSON.parse(line.slice(MARKER.length));
      return typeof v === 'string' ? v : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}
