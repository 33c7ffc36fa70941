// Helpers for .ci/run, run with the machine's Node.js:
//   node .ci/report.mjs counts LOG            -> `PASS FAIL SKIP` from tap's closing summary in LOG
//   node .ci/report.mjs warnings FILE TREE    -> the warnings in FILE (--redirect-warnings), grouped;
//                                                exits 1 if runfleet's own code (TREE outside
//                                                node_modules) caused any of them
//   node .ci/report.mjs failures NAME LOG     -> every failed assertion in LOG with the subtests
//                                                around it and its diagnostics, under NAME; nothing
//                                                if none failed. .ci/run prints it just above the
//                                                summary, so a CI page that shows only the end of
//                                                the output still says what failed.
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
} else if (command === 'failures') {
  const [name, file] = args;
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n') : [];
  const MAX_FAILURES = 20;
  const MAX_DIAG_LINES = 40;
  // tap nests each subtest 4 spaces deeper. A failed subtest's own `not ok` only repeats what a
  // failure inside it said, so it is shown only when nothing inside it failed (a timeout, a throw).
  const open = []; // per depth: { name, failuresBefore }
  const failures = [];
  for (let i = 0; i < lines.length; i++) {
    const m = lines[i].match(/^( *)(# Subtest: (.*)|not ok \d+ - (.*))$/);
    if (!m) continue;
    const depth = m[1].length / 4;
    if (m[3] !== undefined) {
      open.length = depth;
      open[depth] = { name: m[3], failuresBefore: failures.length };
      continue;
    }
    const desc = m[4];
    const sub = open[depth];
    const closesSubtest = sub !== undefined && desc.replace(/ # time=.*$/, '') === sub.name;
    const diag = [];
    if (lines[i + 1]?.trim() === '---') {
      for (let j = i + 2; j < lines.length && lines[j].trim() !== '...'; j++) diag.push(lines[j]);
    }
    if (closesSubtest) {
      open.length = depth;
      if (failures.length > sub.failuresBefore) continue;
    }
    const path = open.slice(0, depth).map((s) => s.name);
    failures.push({ path, desc, diag });
  }
  if (failures.length > 0) {
    console.log(`\n======== failures: ${name} (${failures.length}) ========`);
    for (const f of failures.slice(0, MAX_FAILURES)) {
      console.log(`not ok - ${[...f.path, f.desc].join(' > ')}`);
      const indent = Math.min(...f.diag.filter((l) => l.trim()).map((l) => l.match(/^ */)[0].length));
      for (const l of f.diag.slice(0, MAX_DIAG_LINES)) console.log(`    ${l.slice(indent)}`);
      if (f.diag.length > MAX_DIAG_LINES)
        console.log(`    ... ${f.diag.length - MAX_DIAG_LINES} more lines in the log above`);
    }
    if (failures.length > MAX_FAILURES)
      console.log(`... ${failures.length - MAX_FAILURES} more failures in the log above`);
  }
} else {
  console.error(`usage: node .ci/report.mjs counts LOG | warnings FILE TREE | failures NAME LOG`);
  process.exit(2);
}
