/**
 * Watches the fleets directory with chokidar and calls `onChange` once per burst of edits.
 * Leading edge: the first event of a burst starts a short settle (editors write a file in several
 * steps, a few ms apart), then the reload runs; events during the settle join it, events during
 * the reload cause one more reload after it. A save is applied within the settle; a burst once.
 */
import { watch } from 'chokidar';
import type { Logger } from '../util/logger.js';

export interface ConfigWatcher {
  close(): Promise<void>;
}

export interface ConfigWatcherOptions {
  /** How long the first event of a burst waits for the rest of it. @default 20 */
  settleMs?: number;
  logger: Logger;
}

const FLEET_FILE = /\.ya?ml$/i;

export async function watchFleetDir(
  dir: string,
  onChange: () => Promise<void>,
  opts: ConfigWatcherOptions,
): Promise<ConfigWatcher> {
  const settleMs = opts.settleMs ?? 20;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  /** An event arrived while a reload ran: reload once more after it. */
  let again = false;
  const reload = (): void => {
    timer = undefined;
    running = onChange()
      .catch((e: unknown) => opts.logger.error('reload failed', { error: String(e) }))
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          timer = setTimeout(reload, settleMs);
        }
      });
  };
  const watcher = watch(dir, {
    ignoreInitial: true,
    // Hidden files and editor swap files are not fleet files.
    ignored: (path, stats) =>
      /(^|[/\\])\./.test(path.slice(dir.length)) || (!!stats?.isFile() && !FLEET_FILE.test(path)),
  });
  watcher.on('all', (event, path) => {
    opts.logger.debug('fleet file event', { event: 'fs', fs_event: event, file: path });
    if (timer) return;
    if (running) again = true;
    else timer = setTimeout(reload, settleMs);
  });
  watcher.on('error', (e) => opts.logger.error('file watcher error', { error: String(e) }));
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return {
    async close() {
      if (timer) clearTimeout(timer);
      again = false;
      await watcher.close();
      await running;
    },
  };
}
