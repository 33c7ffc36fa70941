/** One entry point for every plan output format. Pure: returns the text, prints nothing. */
import type { Plan } from '../model/plan.js';
import { renderJson } from './render-json.js';
import { renderMarkdown } from './render-markdown.js';
import { renderText } from './render-text.js';

export type PlanFormat = 'text' | 'markdown' | 'json';

export interface RenderOptions {
  format: PlanFormat;
  /** ANSI colour; text format only. The caller decides (TTY, NO_COLOR). */
  color: boolean;
}

/**
 * Renders a plan as Terraform-style text, a markdown merge-request comment, or sorted JSON. Secret
 * references (sensitive changes) are always shown as `(sensitive value)`.
 */
export function renderPlan(plan: Plan, opts: RenderOptions): string {
  switch (opts.format) {
    case 'text':
      return renderText(plan, opts.color);
    case 'markdown':
      return renderMarkdown(plan);
    case 'json':
      return renderJson(plan);
  }
}
