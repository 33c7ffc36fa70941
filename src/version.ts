import { readFileSync } from 'node:fs';

/** runfleet's version, from package.json (read once; src/ and dist/ sit at the same depth). */
export const RUNFLEET_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

/**
 * The git revision runfleet was built from (dist/REVISION, written by `npm run build`), as GitLab
 * Runner's `revision`; `unknown` when running from source or from a build outside a checkout.
 */
export const RUNFLEET_REVISION: string = (() => {
  try {
    const text = readFileSync(new URL('./REVISION', import.meta.url), 'utf8').trim();
    return /^[0-9a-f]{8}(-dirty)?$/.test(text) ? text : 'unknown';
  } catch {
    return 'unknown';
  }
})();

/** What `runfleet --version` prints: `runfleet 0.1.0 (node v22.23.5, linux-x64)`. */
export function versionLine(): string {
  return `runfleet ${RUNFLEET_VERSION} (${RUNFLEET_REVISION}; node ${process.version}, ${process.platform}-${process.arch})`;
}
