/**
 * TypeScript → JavaScript for the test processes, cached on disk by content.
 *
 * tap's own TypeScript plugin starts ts-node in every test file's process: loading the compiler and
 * transpiling every imported source again costs about 1.7 of the 2.2 CPU-seconds a small test file
 * takes (README, CI). The output here is what ts-node's transpile-only mode gives (the same
 * `ts.transpileModule`, one file at a time, no type-check: `npm run typecheck` does that), written
 * once to node_modules/.cache/runfleet-ts under a hash of everything it depends on, so a process
 * only loads the compiler when a source changed since the last run.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Bump when the transpile below changes, so old entries are not reused. */
const FORMAT = '1';
const root = fileURLToPath(new URL('../..', import.meta.url));
const require = createRequire(import.meta.url);
const tsconfigText = readFileSync(join(root, 'tsconfig.json'), 'utf8');
const tsVersion = JSON.parse(
  readFileSync(join(dirname(require.resolve('typescript')), '..', 'package.json'), 'utf8'),
).version;
export const cacheDir = join(root, 'node_modules', '.cache', 'runfleet-ts');

let ts;
let options;

/** The compiler and tsconfig.json's options, loaded on the first cache miss only. */
function compiler() {
  if (!ts) {
    ts = require('typescript');
    const parsed = ts.parseConfigFileTextToJson('tsconfig.json', tsconfigText).config;
    const converted = ts.convertCompilerOptionsFromJson(parsed.compilerOptions, root).options;
    // Every source is an ES module (package.json "type": "module"); transpileModule cannot look
    // that up for NodeNext, so say it. The source map is inline: the module keeps its .ts URL.
    options = {
      ...converted,
      module: ts.ModuleKind.ESNext,
      moduleResolution: undefined,
      sourceMap: false,
      inlineSourceMap: true,
      inlineSources: false,
      declaration: false,
      noEmit: false,
      outDir: undefined,
      rootDir: undefined,
    };
  }
  return { ts, options };
}

/** JavaScript for the TypeScript file at `path`, from the cache or transpiled (and cached) now. */
export function javascriptFor(path) {
  const source = readFileSync(path, 'utf8');
  const rel = relative(root, path);
  const key = createHash('sha256')
    .update([FORMAT, tsVersion, tsconfigText, rel, source].join('\0'))
    .digest('hex');
  const cached = join(cacheDir, `${key}.js`);
  try {
    return readFileSync(cached, 'utf8');
  } catch {
    // not cached yet
  }
  const { ts, options } = compiler();
  const js = ts.transpileModule(source, { fileName: path, compilerOptions: options }).outputText;
  // Another process may write the same entry at the same moment: each writes its own file and
  // renames it into place, so a reader sees a whole entry or none.
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${cached}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  writeFileSync(tmp, js);
  renameSync(tmp, cached);
  return js;
}
