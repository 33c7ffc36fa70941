/** Shared set-up for the GitLab client and trace tests: a real coordinator on 127.0.0.1. */
import type { Test } from 'tap';
import { GitlabClient, type GitlabClientOptions } from '../../../src/runtime/gitlab/client.js';
import type { Logger } from '../../../src/util/logger.js';
import { systemTime, timeOf, type Time } from '../../../src/util/time.js';
import {
  startCoordinator,
  type Coordinator,
  type CoordinatorOptions,
} from '../../../src/devtools/coordinator/server.js';

export const RUNNER_TOKEN = 'glrt-TestRunnerToken_abc123XYZ';

/** Records every log call, to prove tokens never reach logs. */
export function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const rec = (level: string) => (msg: string, fields?: object) =>
    void lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  const log: Logger & { lines: string[] } = {
    lines,
    debug: rec('debug'),
    info: rec('info'),
    warn: rec('warn'),
    error: rec('error'),
    child: () => log,
  };
  return log;
}

/** `base`'s clock and timers, but every `sleep` is recorded and returns at once. */
export function recordingSleep(base: Time = systemTime): { sleeps: number[]; time: Time } {
  const sleeps: number[] = [];
  const time = timeOf(() => base.now(), base.after);
  time.sleep = async (ms: number) => void sleeps.push(ms);
  return { sleeps, time };
}

export async function setup(
  t: Test,
  coordinatorOpts: Partial<CoordinatorOptions> = {},
  clientOpts: Partial<GitlabClientOptions> = {},
): Promise<{
  coordinator: Coordinator;
  client: GitlabClient;
  sleeps: number[];
  log: ReturnType<typeof recordingLog>;
}> {
  const coordinator = await startCoordinator({ runnerTokens: [RUNNER_TOKEN], ...coordinatorOpts });
  t.teardown(() => coordinator.close());
  const { sleeps, time } = recordingSleep(clientOpts.time);
  const log = recordingLog();
  const client = new GitlabClient({
    url: coordinator.url,
    token: RUNNER_TOKEN,
    systemId: 's_0123456789ab',
    version: '0.1.0',
    random: () => 0.5,
    log,
    ...clientOpts,
    time,
  });
  return { coordinator, client, sleeps, log };
}
