/**
 * Loaded into every test process by tap (package.json, tap.node-arg), after tap's own imports.
 * package.json's tap.test-env sets TAP_TYPE_STRIP_ONLY=1 for the test processes only, which makes
 * tap's TypeScript plugin skip ts-node; these hooks run the TypeScript instead (hooks.mjs). The
 * variable is removed here, before the test imports tap: tap's plugin would otherwise add
 * --no-warnings to NODE_OPTIONS, and every process a test starts would hide its warnings from
 * .ci/run's check.
 */
import module from 'node:module';
import { load, resolve } from './hooks.mjs';

delete process.env.TAP_TYPE_STRIP_ONLY;
// A child a test starts with process.execArgv gets these hooks too, by absolute URL (tap names this
// file relative to the project root; the child may run elsewhere) and without tap's ts-node
// import, which the child would load for nothing.
process.execArgv = process.execArgv
  .filter((arg) => !/^--import=.*\/@tapjs\/typescript\/dist\/esm\/import\.mjs$/.test(arg))
  .map((arg) =>
    /^--import=\.\/test\/loader\/register\.mjs$/.test(arg) ? `--import=${import.meta.url}` : arg,
  );

// The same gate as tap's own hooks (@tapjs/core use-sync-hooks): synchronous hooks in the thread
// from Node.js 24.13.1 (earlier ones were unreliable), else the asynchronous hooks thread.
const [major = 0, minor = 0, patch = 0] = process.versions.node.split('.').map(Number);
const syncHooks =
  typeof module.registerHooks === 'function' &&
  (major > 24 || (major === 24 && (minor > 13 || (minor === 13 && patch >= 1))));
if (syncHooks) module.registerHooks({ resolve, load });
else module.register('./hooks.mjs', import.meta.url);
