// Types for scripts/node-support.mjs, so tests written in TypeScript can call it in-process.
export interface LockFile {
  packages?: Record<string, { version?: string; engines?: { node?: unknown } }>;
}
export declare const AWS_SDK_CLIENTS: readonly string[];
export declare const AWS_SDK_SCOPES: readonly string[];
export declare function lockEntryName(path: string): string;
export declare function covers(required: string, supported: string): boolean;
export declare function lockEngineProblems(lock: LockFile, supported: string): string[];
export declare function newestCovering(
  releases: Record<string, string | undefined>,
  supported: string,
): string | undefined;
