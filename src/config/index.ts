/**
 * Fleet definitions: load fleet files, validate them (schema + rules) with file:line:col for every
 * problem, and normalise them into `DesiredFleet`s.
 */
export { loadFleets } from './load.js';
export { loadFleetsFromText, validateFleetTexts } from './validate.js';
export type { FileResult, FleetText, LoadResult } from './validate.js';
export { fileIssue, formatIssue } from './issues.js';
export type { ConfigIssue } from './issues.js';
export { normalizeFleet } from './normalize.js';
export { fleetSchema } from './schema.js';
export { parseHostPort } from './hosts.js';
export type { HostPort } from './hosts.js';
export { isKnownTimeZone, periodCron } from './cron.js';
export type { WrittenFleet } from './fleet.generated.js';
