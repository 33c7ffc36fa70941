/**
 * The shape of one fleet in rendered plan output, as structured lines that the text and markdown
 * renderers format. Follows Terraform's plan layout (symbols in a 3-character gutter, `old -> new`,
 * `(sensitive value)`, `# forces replacement`, hidden-unchanged counts). Pure.
 */
import type { AttributeChange, CapacityPlan, FleetPlan } from '../model/plan.js';

export type ChangeSymbol = '+' | '~' | '-' | '-/+' | '';

export interface AttributeLine {
  kind: 'attribute';
  depth: number;
  symbol: ChangeSymbol;
  key: string;
  value: string;
  comment?: string;
}

export interface TextLine {
  kind: 'text';
  depth: number;
  symbol: ChangeSymbol;
  text: string;
  comment?: string;
}

export type BlockLine = AttributeLine | TextLine;

export interface FleetBlock {
  /** `fleet.NAME will be created`, without the `# `. */
  header: string;
  symbol: ChangeSymbol;
  lines: BlockLine[];
}

export const SENSITIVE = '(sensitive value)';

/** Terraform's legend wording, in its order. */
export const LEGEND: ReadonlyArray<readonly [Exclude<ChangeSymbol, ''>, string]> = [
  ['+', 'create'],
  ['~', 'update in-place'],
  ['-', 'destroy'],
  ['-/+', 'destroy and then create replacement'],
];

/** Attributes shown without a symbol on an unchanged fleet, so a reader knows which fleet it is. */
const CONTEXT_PATHS = ['name', 'provider.type'] as const;

/** Renders a value as plan output shows it: strings quoted, lists inline, absent as null. */
export function formatValue(value: unknown): string {
  if (value === undefined || value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(formatValue).join(', ')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return entries.length === 0
      ? '{}'
      : `{ ${entries.map(([k, v]) => `${k} = ${formatValue(v)}`).join(', ')} }`;
  }
  return String(value);
}

export function hasCapacityChange(capacity: CapacityPlan | undefined): capacity is CapacityPlan {
  return (
    !!capacity &&
    (capacity.increase > 0 || capacity.remove.length > 0 || capacity.current !== capacity.target)
  );
}

/** The block for one fleet, or undefined for a noop fleet whose capacity does not change. */
export function fleetBlock(fp: FleetPlan): FleetBlock | undefined {
  const replaced = fp.action === 'update' && fp.changes.some((c) => c.forcesReplacement);
  const scaling = hasCapacityChange(fp.capacity);
  if (fp.action === 'noop' && !scaling) return undefined;

  const [symbol, verb]: [ChangeSymbol, string] =
    fp.action === 'create'
      ? ['+', 'will be created']
      : fp.action === 'delete'
        ? ['-', 'will be destroyed']
        : replaced
          ? ['-/+', 'must be replaced']
          : fp.action === 'update'
            ? ['~', 'will be updated in-place']
            : ['~', 'will be scaled'];

  const lines: BlockLine[] = [
    { kind: 'text', depth: 0, symbol, text: `fleet ${JSON.stringify(fp.fleet)} {` },
  ];
  let contextShown = 0;
  if (fp.action !== 'create' && fp.action !== 'delete') {
    const changed = new Set(fp.changes.map((c) => c.path));
    const contextValues: Record<(typeof CONTEXT_PATHS)[number], string> = {
      name: fp.fleet,
      'provider.type': fp.provider,
    };
    for (const path of CONTEXT_PATHS) {
      if (changed.has(path)) continue;
      lines.push({
        kind: 'attribute',
        depth: 1,
        symbol: '',
        key: path,
        value: formatValue(contextValues[path]),
      });
      contextShown++;
    }
  }
  for (const change of fp.changes) lines.push(attributeLine(change));
  const hidden = fp.unchanged - contextShown;
  if (hidden > 0) {
    const noun = hidden === 1 ? 'attribute' : 'attributes';
    lines.push({ kind: 'text', depth: 1, symbol: '', text: `# (${hidden} unchanged ${noun} hidden)` });
  }
  if (scaling) lines.push(...capacityLines(fp.capacity as CapacityPlan, fp.action === 'delete' ? '-' : '~'));
  lines.push({ kind: 'text', depth: 0, symbol: '', text: '}' });
  return { header: `fleet.${fp.fleet} ${verb}`, symbol, lines };
}

function attributeLine(change: AttributeChange): AttributeLine {
  const show = (v: unknown) => (change.sensitive ? SENSITIVE : formatValue(v));
  const line: AttributeLine =
    change.old === undefined
      ? { kind: 'attribute', depth: 1, symbol: '+', key: change.path, value: show(change.new) }
      : change.new === undefined
        ? { kind: 'attribute', depth: 1, symbol: '-', key: change.path, value: `${show(change.old)} -> null` }
        : {
            kind: 'attribute',
            depth: 1,
            symbol: '~',
            key: change.path,
            value: change.sensitive ? SENSITIVE : `${show(change.old)} -> ${show(change.new)}`,
          };
  if (change.forcesReplacement) line.comment = 'forces replacement';
  return line;
}

function capacityLines(capacity: CapacityPlan, symbol: ChangeSymbol): BlockLine[] {
  const lines: BlockLine[] = [{ kind: 'text', depth: 1, symbol: '', text: '' }];
  lines.push({ kind: 'text', depth: 1, symbol, text: 'capacity {' });
  const moves = capacity.current !== capacity.target;
  lines.push({
    kind: 'attribute',
    depth: 2,
    symbol: moves ? '~' : '',
    key: 'instances',
    value: moves ? `${capacity.current} -> ${capacity.target}` : String(capacity.current),
    comment: capacity.reason,
  });
  if (capacity.increase > 0) {
    const noun = capacity.increase === 1 ? 'instance' : 'instances';
    lines.push({ kind: 'text', depth: 2, symbol: '+', text: `${capacity.increase} new ${noun}` });
  }
  for (const removal of capacity.remove) {
    const comment = removal.detail ? `${removal.reason}: ${removal.detail}` : removal.reason;
    lines.push({
      kind: 'text',
      depth: 2,
      symbol: '-',
      text: `instance ${JSON.stringify(removal.id)}`,
      comment,
    });
  }
  lines.push({ kind: 'text', depth: 1, symbol: '', text: '}' });
  return lines;
}
