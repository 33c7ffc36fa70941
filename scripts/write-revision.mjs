// Writes the git revision runfleet was built from into dist/REVISION (8 hex digits, as GitLab
// Runner's `revision`), so runner info, the job log banner and CI_RUNNER_REVISION name the build.
// Run by `npm run build`. Outside a git checkout (a tarball) nothing is written and runfleet says
// `unknown`; a checkout with uncommitted changes gets a `-dirty` suffix.
import { execFileSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = fileURLToPath(new URL('../dist/REVISION', import.meta.url));
const git = (...args) =>
  execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();

let revision;
try {
  revision = git('rev-parse', '--short=8', 'HEAD');
  if (git('status', '--porcelain', '--untracked-files=no') !== '') revision += '-dirty';
} catch {
  revision = undefined;
}
await mkdir(fileURLToPath(new URL('../dist/', import.meta.url)), { recursive: true });
if (revision && /^[0-9a-f]{8}(-dirty)?$/.test(revision)) await writeFile(out, `${revision}\n`);
else await rm(out, { force: true });
