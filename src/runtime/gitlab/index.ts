/** GitLab's runner job API: the client, the job trace, and the runner's identity. */
export * from './client.js';
export * from './job.js';
export * from './refuse.js';
export * from './runner-info.js';
export * from './timers.js';
export * from './trace.js';
export { DEFAULT_OUTPUT_LIMIT, outputLimitNotice, TraceLog, type TraceStream } from './trace-log.js';
export { style, sectionName, type SectionOptions } from './trace-format.js';
export { apiBaseUrl, silentLog, type GitlabLog } from './transport.js';
export { DEFAULT_TOKEN_PREFIXES, MASK } from './masker.js';
