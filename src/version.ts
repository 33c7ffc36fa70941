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

/** What `runfleet --version` prints: `runfleet 0.1.0 (node v22.23.5, linux-x64)`. */
export function versionLine(): string {
  return `runfleet ${RUNFLEET_VERSION} (node ${process.version}, ${process.platform}-${process.arch})`;
}
