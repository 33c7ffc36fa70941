/**
 * The validator `npm run build` precompiles (scripts/gen-validator.mjs → dist/config/
 * fleet-validator.cjs) answers exactly as the schema compiled at run time: same verdicts, same
 * errors (paths, keywords, the schema-side messages `verbose` carries), for valid and broken fleets.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import t from 'tap';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { compileFleetValidator } from '../../src/config/schema.js';

const root = resolve(import.meta.dirname, '../..');
const require = createRequire(import.meta.url);

const fleets: unknown[] = [
  {
    name: 'ok',
    provider: { type: 'local' },
    capacity_per_instance: 2,
    max_instances: 3,
    policy: [{ idle_count: 1 }],
  },
  { name: 'Bad_Name', provider: { type: 'aws', region: 5 }, capacity_per_instance: -1, foo: 1 },
  { name: 'x', provider: { type: 'nope' }, policy: [{ idle_count: 'x', periods: ['* * *'] }] },
  { name: 'y', provider: { type: 'static', hosts: [] }, connector: { port: 70000 } },
  'not a mapping',
  null,
];

const shape = (v: ValidateFunction, doc: unknown) => {
  const ok = v(doc);
  return {
    ok,
    errors: (v.errors ?? []).map((e: ErrorObject) => ({
      path: e.instancePath,
      keyword: e.keyword,
      params: e.params,
      message: e.message,
      errorMessage: (e.parentSchema as { errorMessage?: unknown } | undefined)?.errorMessage,
    })),
  };
};

t.test('the precompiled validator answers as the run-time compiled one', async (t) => {
  execFileSync(process.execPath, [resolve(root, 'scripts/gen-validator.mjs')], { cwd: root });
  const pre = (require(resolve(root, 'dist/config/fleet-validator.cjs')) as { default: ValidateFunction })
    .default;
  const live = compileFleetValidator().validate;
  let failing = 0;
  for (const doc of fleets) {
    const a = shape(pre, doc);
    if (!a.ok) failing++;
    t.strictSame(a, shape(live, doc), `same answer for ${JSON.stringify(doc)}`);
  }
  t.equal(failing, fleets.length - 1, 'every broken fleet is refused, the good one passes');
});
