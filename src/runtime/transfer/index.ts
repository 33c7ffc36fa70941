/**
 * Moving files between an instance and the manager, for artifacts and caches
 * (docs/gitlab-job-api.md §6a). The instance needs a POSIX `sh`, `find`, `xargs` and `tar` (GNU or
 * busybox) and nothing else: no helper binary, no zip, no curl. Everything GitLab-specific (zip,
 * gzip, globs) happens on the manager, streamed, with backpressure from end to end:
 *
 * - `selectFiles(connector, {root, paths, exclude, untracked})`: what an artifact or cache takes,
 *   with gitlab-runner's doublestar semantics, and `selectionLog()` for gitlab-runner's log lines.
 * - `archiveStream(connector, {root, paths, format})`: `{stream, done}`, the selection as a zip,
 *   gzip or raw byte stream; finished only if `tar` on the instance succeeded.
 * - `spoolToFile(body)`: a download written to a private temporary file (zips need random access).
 * - `extractZip(connector, {root, zipFile})`: a zip unpacked into a directory on the instance.
 * - `extractZipStream(connector, {root, body})`: a zip download unpacked on the instance while
 *   it still arrives; what must wait for the central directory is kept on disk meanwhile.
 */
export {
  archiveStream,
  compressionLevel,
  type ArchiveFormat,
  type ArchiveOptions,
  type ArchiveStream,
  type ArchiveSummary,
} from './archive.js';
export { TransferError } from './errors.js';
export { extractZip, unsafeEntryName, type ExtractOptions, type ExtractSummary } from './extract.js';
export {
  DownloadCutShort,
  extractZipStream,
  type StreamExtractOptions,
  type StreamExtractResult,
} from './stream-extract.js';
export { compilePattern, isPatternProblem, type PathPattern } from './glob.js';
export {
  selectFiles,
  selectionLog,
  type PatternCount,
  type Selection,
  type SelectOptions,
} from './select.js';
export { spoolToFile, type SpooledFile } from './spool.js';
