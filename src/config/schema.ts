/**
 * Validates fleet documents against schemas/fleet.schema.json (the source of truth) and turns ajv's
 * errors into short messages an operator can act on, each with the JSON pointer it is about.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import type { PositionTarget } from './yaml-source.js';
import { fieldPath, looksLikeToken, toPointer, pointerSegments } from './issues.js';
import type { WrittenFleet } from './fleet.generated.js';

/** A finding before it has a file position. */
export interface IssueDraft {
  severity: 'error' | 'warning';
  pointer: string;
  message: string;
  hint?: string;
  /** Which part of the YAML pair to point at; see `PositionTarget`. */
  target?: PositionTarget;
  /** Set by rules that explain a value better than the schema: schema errors at or below go. */
  replacesSchemaErrors?: boolean;
}

// Same place relative to this module in src/config and in the built dist/config.
const SCHEMA_URL = new URL('../../schemas/fleet.schema.json', import.meta.url);

let schemaCache: Record<string, unknown> | undefined;
/** The fleet JSON Schema, read once on first use (nothing is read at import time). */
export function fleetSchema(): Record<string, unknown> {
  schemaCache ??= JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as Record<string, unknown>;
  return schemaCache;
}

// ajv is CommonJS and loaded only when the schema must be compiled here (see `validator`).
const require = createRequire(import.meta.url);

/**
 * Compiles the fleet schema with runfleet's ajv options. `source: true` keeps the generated code
 * for ajv's standalone output (scripts/gen-validator.mjs precompiles it at build time).
 */
export function compileFleetValidator(opts: { source?: boolean } = {}): {
  ajv: Ajv;
  validate: ValidateFunction<WrittenFleet>;
} {
  const { Ajv: AjvClass } = require('ajv') as typeof import('ajv');
  const ajv = new AjvClass({
    allErrors: true,
    verbose: true,
    discriminator: true,
    allowUnionTypes: true,
    ...(opts.source ? { code: { source: true } } : {}),
  });
  // ajv-formats is CommonJS: its default export arrives wrapped.
  const addFormats = require('ajv-formats') as { default: (a: Ajv) => Ajv };
  addFormats.default(ajv);
  // Our one custom annotation: a schema-side message for pattern/format/anyOf/oneOf failures
  // (VS Code's JSON support reads the same keyword).
  ajv.addKeyword({ keyword: 'errorMessage', schemaType: 'string' });
  return { ajv, validate: ajv.compile<WrittenFleet>(fleetSchema()) };
}

/** Built by `npm run build` beside the compiled module (dist/config/); absent in src/config. */
const PRECOMPILED = './fleet-validator.cjs';

let validatorCache: ValidateFunction<WrittenFleet> | undefined;
function validator(): ValidateFunction<WrittenFleet> {
  if (validatorCache) return validatorCache;
  try {
    validatorCache = (require(PRECOMPILED) as { default: ValidateFunction<WrittenFleet> }).default;
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'MODULE_NOT_FOUND') throw e;
    validatorCache = compileFleetValidator().validate;
  }
  return validatorCache;
}

/** Schema errors of one fleet document, simplified and deduplicated; empty when it is valid. */
export function schemaIssues(data: unknown): IssueDraft[] {
  const validate = validator();
  if (validate(data)) return [];
  const errors = simplifyUnions(validate.errors ?? []);
  const seen = new Set<string>();
  const out: IssueDraft[] = [];
  for (const e of errors) {
    const draft = describe(e);
    const key = `${draft.pointer}\0${draft.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(draft);
  }
  return out;
}

/** True when `pointer` is `ancestor` or lies below it. */
export function isAtOrBelow(pointer: string, ancestor: string): boolean {
  return pointer === ancestor || pointer.startsWith(ancestor + '/');
}

/**
 * An anyOf/oneOf failure reports every branch. When some branch got past the value's own shape
 * (its errors are deeper, e.g. one bad list item), those deeper errors are the useful ones; otherwise
 * one message for the whole value says what is accepted. Discriminated unions (the provider) are
 * already narrowed by ajv to the branch `type` selects.
 */
function simplifyUnions(errors: ErrorObject[]): ErrorObject[] {
  let out = errors;
  for (const union of errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf')) {
    const at = union.instancePath;
    const related = out.filter((e) => isAtOrBelow(e.instancePath, at));
    const deeper = related.some((e) => e.instancePath !== at);
    out = out.filter((e) => (deeper ? e.instancePath !== at : !related.includes(e) || e === union));
  }
  return out;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  array: 'a list',
  null: 'empty',
};

function typeName(type: unknown): string {
  const types = Array.isArray(type) ? type : [type];
  return types.map((t) => TYPE_NAMES[String(t)] ?? String(t)).join(' or ');
}

function schemaMessage(e: ErrorObject): string | undefined {
  const msg = (e.parentSchema as { errorMessage?: unknown } | undefined)?.errorMessage;
  return typeof msg === 'string' ? msg : undefined;
}

/** One ajv error -> draft. Messages name fields and allowed values, never the written value. */
function describe(e: ErrorObject): IssueDraft {
  const pointer = e.instancePath;
  const path = fieldPath(pointer);
  const error = (message: string, extra: Partial<IssueDraft> = {}): IssueDraft => ({
    severity: 'error',
    pointer,
    message,
    ...extra,
  });
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required': {
      const missing = String(p.missingProperty);
      const field = fieldPath(toPointer([...pointerSegments(pointer), missing]));
      return error(`${field} is required`, { target: 'key' });
    }
    case 'additionalProperties': {
      const key = String(p.additionalProperty);
      if (looksLikeToken(key)) {
        // Someone pasted a token where a key goes: name neither it nor a pointer that contains it.
        return error(`${path} has an unknown field that looks like a GitLab token (not shown)`, {
          hint: 'secrets must not be stored in fleet files; use token: {env: NAME} or token: {file: PATH}',
        });
      }
      const allowed = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      const where = pointer === '' ? '' : ` in ${path}`;
      const suggestion = closest(key, allowed);
      return {
        severity: 'error',
        pointer: toPointer([...pointerSegments(pointer), key]),
        message: `unknown field "${key}"${where}`,
        hint:
          suggestion !== undefined
            ? `did you mean "${suggestion}"?`
            : `allowed here: ${allowed.length > 0 ? allowed.join(', ') : 'no fields'}`,
        target: 'key',
      };
    }
    case 'type':
      return error(`${path} must be ${typeName(p.type)}`);
    case 'enum':
      return error(`${path} must be one of: ${(p.allowedValues as unknown[]).map(String).join(', ')}`);
    case 'const':
      return error(`${path} must be ${JSON.stringify(p.allowedValue)}`);
    case 'discriminator': {
      const tag = fieldPath(toPointer([...pointerSegments(pointer), String(p.tag)]));
      const known = unionTags(e.parentSchema, String(p.tag));
      if (p.error === 'tag' && p.tagValue === undefined) {
        return error(`${tag} is required`, {
          hint: `set type to one of: ${known.join(', ')}`,
          target: 'key',
        });
      }
      return {
        ...error(`${tag} must be one of: ${known.join(', ')}`),
        pointer: toPointer([...pointerSegments(pointer), String(p.tag)]),
      };
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return error(
        schemaMessage(e) !== undefined
          ? `${path} ${schemaMessage(e)}`
          : `${path} must be ${p.comparison} ${p.limit}`,
      );
    case 'minItems':
      return error(`${path} must have at least ${p.limit} item${p.limit === 1 ? '' : 's'}`);
    case 'uniqueItems':
      return error(`${path} must not repeat an item (items ${p.j} and ${p.i} are equal)`);
    case 'minLength':
      return error(
        p.limit === 1 ? `${path} must not be empty` : `${path} must be at least ${p.limit} characters`,
      );
    case 'maxLength':
      return error(`${path} must be at most ${p.limit} characters`);
    default:
      // pattern, format, anyOf, oneOf and anything rarer: the schema's own message when it has one.
      return error(`${path} ${schemaMessage(e) ?? e.message ?? 'is invalid'}`);
  }
}

/** The `const` values of `tag` across a discriminated oneOf (`local`, `static`, `aws`). */
function unionTags(parent: unknown, tag: string): string[] {
  const branches = (parent as { oneOf?: { $ref?: string }[] } | undefined)?.oneOf ?? [];
  const definitions = (fleetSchema().definitions ?? {}) as Record<string, SchemaNode>;
  return branches.flatMap((b) => {
    const def = definitions[(b.$ref ?? '').replace('#/definitions/', '')];
    const value = def?.properties?.[tag]?.const;
    return value === undefined ? [] : [String(value)];
  });
}

type SchemaNode = { properties?: Record<string, { const?: unknown }> };

/** The allowed name nearest to a mistyped one, if it is plausibly a typo. */
function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
