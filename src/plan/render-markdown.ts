/**
 * Markdown rendering of a plan for a merge-request comment: a summary line, one collapsible
 * `<details>` per fleet holding a ```diff block (the change marker moved to column 0 so the diff
 * highlighter colours it), then diagnostics as a list. Pure.
 */
import type { Diagnostic, FleetPlan, Plan } from '../model/plan.js';
import { fleetBlock, type FleetBlock, type ChangeSymbol } from './render-blocks.js';
import { NO_CHANGES, blockLines, painter, summaryLine } from './render-text.js';

/** Diff highlighters colour `+` green, `-` red and `!` as changed. */
const DIFF_MARKER: Record<ChangeSymbol, string> = { '+': '+', '-': '-', '~': '!', '-/+': '!', '': ' ' };

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A fence longer than any backtick run inside, so values cannot close it. */
function fenceFor(body: string): string {
  const longest = Math.max(0, ...(body.match(/`+/g) ?? []).map((run) => run.length));
  return '`'.repeat(Math.max(3, longest + 1));
}

function diffBody(block: FleetBlock): string {
  const plain = painter(false);
  const [header, ...lines] = blockLines(block, plain);
  const marked = block.lines.map((line, i) => `${DIFF_MARKER[line.symbol]}${lines[i] ?? ''}`.trimEnd());
  return [` ${header ?? ''}`, ...marked].join('\n');
}

export function renderMarkdown(plan: Plan): string {
  const out: string[] = [];
  const shown = plan.fleets
    .map((fp) => ({ fp, block: fleetBlock(fp) }))
    .filter((x): x is { fp: (typeof plan.fleets)[number]; block: FleetBlock } => x.block !== undefined);
  out.push(shown.length === 0 ? `**${NO_CHANGES}**` : `**${summaryLine(plan)}**`);

  for (const { fp, block } of shown) {
    const verb = block.header.slice(`fleet.${fp.fleet} `.length);
    const body = diffBody(block);
    const fence = fenceFor(body);
    out.push(
      '',
      `<details><summary><code>fleet.${escapeHtml(fp.fleet)}</code> ${escapeHtml(verb)}</summary>`,
      '',
      `${fence}diff`,
      body,
      fence,
      '',
      '</details>',
    );
  }

  const diagnostics: { fp?: FleetPlan; d: Diagnostic }[] = [
    ...(plan.diagnostics ?? []).map((d) => ({ d })),
    ...plan.fleets.flatMap((fp) => fp.diagnostics.map((d) => ({ fp, d }))),
  ];
  if (diagnostics.length > 0) {
    out.push('', '**Diagnostics**', '');
    for (const { fp, d } of diagnostics) {
      const label = d.severity === 'error' ? '**Error**' : '**Warning**';
      const source = fp?.source ? ` (${escapeHtml(fp.source.file)} line ${fp.source.line})` : '';
      const hint = d.hint ? ` Hint: ${escapeHtml(d.hint)}` : '';
      const message = escapeHtml(d.message).replace(/[^.!?]$/, '$&.');
      const where = fp ? ` in \`fleet.${fp.fleet}\`${source}` : '';
      out.push(`- ${label} \`${d.code}\`${where}: ${message}${hint}`);
    }
  }
  return out.join('\n') + '\n';
}
