// Types for scripts/gen-types.mjs, so tests written in TypeScript can call the generator in-process.
export declare const SCHEMA_PATH: string;
export declare const OUTPUT_PATH: string;
/** The TypeScript source the committed src/config/fleet.generated.ts must equal. */
export declare function generateFleetTypes(): Promise<string>;
