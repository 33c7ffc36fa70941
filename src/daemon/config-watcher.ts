/**
 * Watches the fleets directory with chokidar and calls `onChange` once per burst of edits
 * (editors write a file in several steps; a debounce turns that into one reload).
 */
import { watch } from 'chokidar';
import type { Logger } from '../util/logger.js';

export interface ConfigWatcher {
  close(): Promise<void>;
}

export interface ConfigWatcherOptions {
  /** @default 200 */
  debounceMs?: number;
  logger: Logger;
}

const FLEET_FILE = /\.ya?ml$/i;

export async function watchFleetDir(
  dir: string,
  onChange: () => Promise<void>,
  opts: ConfigWatcherOptions,
): Promise<ConfigWatcher> {
  const debounceMs = opts.debounceMs ?? 200;
  let timer: NodeJS.Timeout | undefined;
  let running = Promise.resolve();
  const watcher = watch(dir, {
    ignoreInitial: true,
    // Hidden files and editor swap files are not fleet files.
    ignored: (path, stats) =>
      /(^|[/\\])\./.test(path.slice(dir.length)) || (!!stats?.isFile() && !FLEET_FILE.test(path)),
  });
  watcher.on('all', (event, path) => {
    opts.logger.debug('fleet file event', { event: 'fs', fs_event: event, file: path });
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      running = running
        .then(onChange)
        .catch((e: unknown) => opts.logger.error('reload failed', { error: String(e) }));
    }, debounceMs);
  });
  watcher.on('error', (e) => opts.logger.error('file watcher error', { error: String(e) }));
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return {
    async close() {
      if (timer) clearTimeout(timer);
      await watcher.close();
      await running;
    },
  };
}
