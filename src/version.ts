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
