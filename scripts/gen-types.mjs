// Generates src/config/fleet.generated.ts (the WrittenFleet type) from schemas/fleet.schema.json.
// `npm run gen:types` writes the file; test/config/schema-drift.test.ts calls generateFleetTypes()
// and fails when the committed file differs. Output is deterministic: fixed banner, no timestamps,
// formatted with the project's Prettier settings so `prettier --check` agrees with it.
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { compile } from 'json-schema-to-typescript';
import * as prettier from 'prettier';

const root = new URL('..', import.meta.url);
export const SCHEMA_PATH = fileURLToPath(new URL('schemas/fleet.schema.json', root));
export const OUTPUT_PATH = fileURLToPath(new URL('src/config/fleet.generated.ts', root));

const BANNER = `/**
 * Generated from schemas/fleet.schema.json by scripts/gen-types.mjs (npm run gen:types).
 * Do not edit by hand: change the schema and regenerate. WrittenFleet is a fleet as written in a
 * fleet file; config/normalize.ts turns it into the normalised Fleet of model/fleet.ts.
 */`;

/** Copies `node` and appends each schema default to its description, so the TSDoc shows it. */
function withDefaultsInDocs(node) {
  if (Array.isArray(node)) return node.map(withDefaultsInDocs);
  if (node === null || typeof node !== 'object') return node;
  const out = Object.fromEntries(
    Object.entries(node).map(([k, v]) => [k, k === 'default' ? v : withDefaultsInDocs(v)]),
  );
  if (typeof out.description === 'string' && 'default' in out) {
    out.description += `\n\n@default ${JSON.stringify(out.default)}`;
  }
  return out;
}

/** The TypeScript source the committed src/config/fleet.generated.ts must equal. */
export async function generateFleetTypes() {
  const schema = JSON.parse(await readFile(SCHEMA_PATH, 'utf8'));
  const ts = await compile(withDefaultsInDocs(schema), 'WrittenFleet', {
    bannerComment: BANNER,
    format: false,
    ignoreMinAndMaxItems: true,
    additionalProperties: false,
    unknownAny: true,
    cwd: fileURLToPath(root),
  });
  const options = (await prettier.resolveConfig(OUTPUT_PATH)) ?? {};
  return prettier.format(ts, { ...options, filepath: OUTPUT_PATH });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await writeFile(OUTPUT_PATH, await generateFleetTypes());
  console.log(`wrote ${OUTPUT_PATH}`);
}
