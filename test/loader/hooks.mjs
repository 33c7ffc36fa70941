/**
 * Module hooks that run the repository's TypeScript in the test processes (see transpile.mjs):
 * `./x.js` resolves to `./x.ts` when only that exists (TypeScript's NodeNext imports name the
 * output), and a .ts/.mts file outside node_modules loads as its transpiled JavaScript under its
 * own URL, so import.meta.url, snapshots and stack traces stay those of the source.
 *
 * The functions never await: they serve both module.registerHooks (synchronous, in the thread)
 * and module.register (asynchronous, in the hooks thread), whatever `next*` returns.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { javascriptFor } from './transpile.mjs';

const ownFile = (url) => url.startsWith('file:') && !url.includes('/node_modules/');

/** The .ts URL a relative `.js` import means, when the .js file itself does not exist. */
function typescriptTarget(specifier, parentURL) {
  if (!parentURL || !ownFile(parentURL) || !/^\.\.?\//.test(specifier) || !/\.m?js$/.test(specifier)) {
    return undefined;
  }
  const url = new URL(specifier, parentURL);
  const path = fileURLToPath(url);
  if (existsSync(path)) return undefined;
  const ts = path.replace(/\.(m?)js$/, '.$1ts');
  return existsSync(ts) ? pathToFileURL(ts).href + url.search + url.hash : undefined;
}

export function resolve(specifier, context, nextResolve) {
  return nextResolve(typescriptTarget(specifier, context.parentURL) ?? specifier, context);
}

export function load(url, context, nextLoad) {
  if (!ownFile(url)) return nextLoad(url, context);
  const path = fileURLToPath(url);
  if (!/\.m?ts$/.test(path) || path.endsWith('.d.ts')) return nextLoad(url, context);
  return { format: 'module', source: javascriptFor(path), shortCircuit: true };
}
