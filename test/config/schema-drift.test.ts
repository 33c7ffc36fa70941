/**
 * src/config/fleet.generated.ts is generated from schemas/fleet.schema.json. This fails when someone
 * changed the schema without `npm run gen:types` (or edited the generated file by hand).
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { generateFleetTypes, OUTPUT_PATH } from '../../scripts/gen-types.mjs';

t.test('the committed generated types match the schema', async (t) => {
  const [committed, generated] = await Promise.all([readFile(OUTPUT_PATH, 'utf8'), generateFleetTypes()]);
  t.ok(generated.includes('export interface WrittenFleet'), 'the generator produces WrittenFleet');
  t.equal(committed, generated, 'src/config/fleet.generated.ts is stale: run `npm run gen:types`');
});

t.test('the generator is deterministic', async (t) => {
  const [a, b] = await Promise.all([generateFleetTypes(), generateFleetTypes()]);
  t.equal(a, b);
  t.notMatch(a, /\d{4}-\d{2}-\d{2}T/, 'no timestamps');
});
