// Helpers for .ci/run, run with the machine's Node.js:
//   node .ci/report.mjs counts LOG            -> `PASS FAIL SKIP` from tap's closing summary in LOG
//   node .ci/report.mjs warnings FILE TREE    -> the warnings in FILE (--redirect-warnings), grouped;
//                                                exits 1 if runfleet's own code (TREE outside
//                                                node_modules) caused any of them
import { readFileSync, existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [command, ...args] = process.argv.slice(2);

if (command === 'counts') {
  // tap's closing summary looks like `# { total: 120, pass: 118, fail: 1, skip: 1 }`. A run that
  // never got there (build, type-check or lint failed, or tap crashed) counts as one failure.
  const text = readFileSync(args[0], 'utf8');
  const m = [...text.matchAll(/^# \{ total: (\d+)(.*)\}$/gm)].pop();
  const num = (k) => Number((m?.[2].match(new RegExp(`${k}: (\\d+)`)) ?? [0, 0])[1]);
  console.log(m ? `${num('pass')} ${num('fail')} ${num('skip') + num('todo')}` : '0 1 0');
} else if (command === 'warnings') {
  const [file, tree] = args;
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  // Each warning starts with `(node:PID) `; with --trace-warnings/--trace-deprecation a stack follows.
  const warnings = text.split(/^\(node:\d+\) /m).filter((w) => w.trim() !== '');
  const ours = (frame) =>
    (frame.includes(`${tree}/`) || frame.includes(`${pathToFileURL(tree).href}/`)) &&
    !frame.includes('/node_modules/');
  const groups = new Map();
  for (const w of warnings) {
    const [headline = '', ...rest] = w.split('\n');
    // Where the warning came from: the first stack frame outside Node.js itself.
    const origin =
      rest
        .map((l) => l.trim())
        .filter((l) => l.startsWith('at '))
        .map((l) => l.match(/\(([^()]*)\)$/)?.[1] ?? l.slice(3))
        .find((where) => !/^(node:|<anonymous>$|native$)/.test(where)) ?? '(no stack)';
    const key = `${headline.split('. ')[0]}\n      from ${origin}`;
    const g = groups.get(key) ?? { count: 0, ours: ours(origin) };
    g.count++;
    groups.set(key, g);
  }
  let oursCount = 0;
  for (const [key, g] of groups) {
    if (g.ours) oursCount += g.count;
    console.log(`    ${g.ours ? 'RUNFLEET' : 'elsewhere'} ${g.count}x ${key}`);
  }
  process.exit(oursCount > 0 ? 1 : 0);
} else {
  console.error(`usage: node .ci/report.mjs counts LOG | warnings FILE TREE`);
  process.exit(2);
}
