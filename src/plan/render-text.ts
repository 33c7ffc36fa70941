/**
 * Terraform-style text rendering of a plan, for terminals. Colour (ANSI) only when asked: the CLI
 * decides from the TTY and NO_COLOR. Pure.
 */
import type { Diagnostic, FleetPlan, Plan } from '../model/plan.js';
import { LEGEND, fleetBlock, type BlockLine, type FleetBlock, type ChangeSymbol } from './render-blocks.js';

const ANSI = { bold: '1', red: '31', green: '32', yellow: '33' } as const;

export interface Painter {
  bold(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
}

export function painter(color: boolean): Painter {
  const wrap = (code: string) => (s: string) => (color && s !== '' ? `\u001b[${code}m${s}\u001b[0m` : s);
  return { bold: wrap(ANSI.bold), red: wrap(ANSI.red), green: wrap(ANSI.green), yellow: wrap(ANSI.yellow) };
}

function paintSymbol(symbol: ChangeSymbol, p: Painter): string {
  switch (symbol) {
    case '+':
      return p.green(symbol);
    case '~':
      return p.yellow(symbol);
    case '-':
      return p.red(symbol);
    case '-/+':
      return `${p.red('-')}/${p.green('+')}`;
    case '':
      return '';
  }
}

/**
 * The lines of one block: the symbol sits in a 3-character gutter after 4 spaces per depth (so
 * `-/+` starts at column 0 on a fleet line), and `=` is aligned within each run of attributes.
 */
export function blockLines(block: FleetBlock, p: Painter): string[] {
  const out = [p.bold(`  # ${block.header}`)];
  const widths = keyWidths(block.lines);
  block.lines.forEach((line, i) => {
    const gutter =
      ' '.repeat(line.depth * 4) + ' '.repeat(3 - line.symbol.length) + paintSymbol(line.symbol, p) + ' ';
    const body = line.kind === 'attribute' ? `${line.key.padEnd(widths[i] ?? 0)} = ${line.value}` : line.text;
    const comment = line.comment ? `  # ${line.comment}` : '';
    out.push(`${gutter}${body}${comment}`.trimEnd());
  });
  return out;
}

/** For each attribute line, the key width of the run of consecutive attributes it belongs to. */
function keyWidths(lines: BlockLine[]): number[] {
  const widths: number[] = new Array<number>(lines.length).fill(0);
  let start = 0;
  while (start < lines.length) {
    const first = lines[start] as BlockLine;
    if (first.kind !== 'attribute') {
      start++;
      continue;
    }
    let end = start;
    let width = 0;
    while (end < lines.length) {
      const line = lines[end] as BlockLine;
      if (line.kind !== 'attribute' || line.depth !== first.depth) break;
      width = Math.max(width, line.key.length);
      end++;
    }
    for (let i = start; i < end; i++) widths[i] = width;
    start = end;
  }
  return widths;
}

/** Every symbol the rendered blocks use, so the legend lists only those. */
export function symbolsUsed(blocks: FleetBlock[]): Set<ChangeSymbol> {
  const used = new Set<ChangeSymbol>();
  for (const b of blocks) for (const l of b.lines) if (l.symbol) used.add(l.symbol);
  return used;
}

export function summaryLine(plan: Plan): string {
  const s = plan.summary;
  return `Plan: ${s.add} to add, ${s.change} to change, ${s.destroy} to destroy.`;
}

export const NO_CHANGES = 'No changes. Your fleets match the configuration.';

function where(fp: FleetPlan): string {
  return fp.source ? `fleet.${fp.fleet} (${fp.source.file} line ${fp.source.line})` : `fleet.${fp.fleet}`;
}

/** A Terraform-style diagnostic box. */
function diagnosticLines(fp: FleetPlan | undefined, d: Diagnostic, p: Painter): string[] {
  const title = d.severity === 'error' ? p.bold(p.red('Error:')) : p.bold(p.yellow('Warning:'));
  const lines = ['╷', `│ ${title} ${d.message}`, '│', `│   ${fp ? `${where(fp)}, ` : ''}${d.code}`];
  if (d.hint) lines.push('│', `│ Hint: ${d.hint}`);
  lines.push('╵');
  return lines;
}

export function renderText(plan: Plan, color: boolean): string {
  const p = painter(color);
  const blocks = plan.fleets.map(fleetBlock).filter((b): b is FleetBlock => b !== undefined);
  const out: string[] = [];
  if (blocks.length === 0) {
    out.push(p.bold(NO_CHANGES));
  } else {
    const used = symbolsUsed(blocks);
    out.push('Fleet actions are indicated with the following symbols:');
    for (const [symbol, meaning] of LEGEND) {
      if (used.has(symbol)) out.push(`${' '.repeat(3 - symbol.length)}${paintSymbol(symbol, p)} ${meaning}`);
    }
    out.push('', 'runfleet will perform the following actions:');
    for (const block of blocks) out.push('', ...blockLines(block, p));
    out.push('', p.bold(summaryLine(plan)));
  }
  for (const d of plan.diagnostics ?? []) out.push('', ...diagnosticLines(undefined, d, p));
  for (const fp of plan.fleets) {
    for (const d of fp.diagnostics) out.push('', ...diagnosticLines(fp, d, p));
  }
  return out.join('\n') + '\n';
}
