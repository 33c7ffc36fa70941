/**
 * The rooms of src/ and the one-way arrows between them (README "Architecture"): each room may
 * import only the rooms listed for it, so nothing below imports what is above, and the planner
 * imports no I/O at all. A new import that breaks an arrow fails here with the file that made it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import t from 'tap';

const SRC = join(import.meta.dirname, '..', 'src');

/** Room → the rooms it may import (besides itself, `errors.ts` and `version.ts`). */
const ALLOWED: Record<string, readonly string[]> = {
  util: [],
  model: ['util'],
  config: ['model', 'util'],
  plan: ['model', 'util'],
  store: ['model', 'util'],
  providers: ['config', 'model', 'util'],
  apply: ['plan', 'providers', 'store', 'model', 'util'],
  runtime: ['plan', 'providers', 'store', 'model', 'util'],
  daemon: ['apply', 'config', 'plan', 'runtime', 'providers', 'store', 'model', 'util'],
  devtools: ['runtime', 'model', 'util'],
  import: ['config', 'model', 'util'],
  cli: [
    'daemon',
    'devtools',
    'import',
    'apply',
    'config',
    'plan',
    'runtime',
    'providers',
    'store',
    'model',
    'util',
  ],
};
const SHARED = new Set(['errors.ts', 'version.ts']);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

const roomOf = (path: string) => relative(SRC, path).split('/')[0] ?? '';
const importsOf = (text: string) =>
  [...text.matchAll(/(?:from\s+|import\s*\(?\s*)['"]([^'"]+)['"]/g)].map((m) => m[1] ?? '');

t.test('every room imports only the rooms below it', async (t) => {
  const broken: string[] = [];
  const files = sources(SRC);
  for (const file of files) {
    const room = roomOf(file);
    const allowed = ALLOWED[room];
    if (!allowed) {
      if (!SHARED.has(room))
        broken.push(`${relative(SRC, file)}: room ${room} is not in the architecture table`);
      continue;
    }
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = roomOf(normalize(join(dirname(file), spec.replace(/\.js$/, '.ts'))));
      if (target === room || SHARED.has(target) || allowed.includes(target)) continue;
      broken.push(`${relative(SRC, file)} imports ${spec} (${room} → ${target})`);
    }
  }
  t.ok(files.length > 50, `read ${files.length} source files`);
  t.same(broken, [], 'no arrow points up');
});

t.test('the planner imports no I/O: no node modules, no SDKs, no clients', async (t) => {
  const io: string[] = [];
  for (const file of sources(join(SRC, 'plan'))) {
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.') && spec !== 'croner') io.push(`${relative(SRC, file)} imports ${spec}`);
    }
  }
  t.same(io, [], 'plan/ is pure (croner only parses cron expressions)');
});
