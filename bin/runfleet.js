#!/usr/bin/env node
// Thin shim: everything lives in the compiled CLI (npm run build produces dist/).
import('../dist/cli/main.js').then((m) => m.main(process.argv.slice(2)));
