/** Shared set-up for the GitLab client and trace tests: a real coordinator on 127.0.0.1. */
import type { Test } from 'tap';
import { GitlabClient, type GitlabClientOptions } from '../../../src/runtime/gitlab/client.js';
import type { GitlabLog } from '../../../src/runtime/gitlab/transport.js';
import {
  startCoordinator,
  type Coordinator,
  type CoordinatorOptions,
} from '../../../src/devtools/coordinator/server.js';

export const RUNNER_TOKEN = 'glrt-TestRunnerToken_abc123XYZ';

/** Records every log call, to prove tokens never reach logs. */
export function recordingLog(): GitlabLog & { lines: string[] } {
  const lines: string[] = [];
  const rec = (level: string) => (obj: object, msg: string) =>
    void lines.push(`${level} ${msg} ${JSON.stringify(obj)}`);
  return { lines, debug: rec('debug'), info: rec('info'), warn: rec('warn') };
}

/** Records requested sleeps and returns at once. */
export function recordingSleep(): { sleeps: number[]; sleep: (ms: number) => Promise<void> } {
  const sleeps: number[] = [];
  return { sleeps, sleep: async (ms: number) => void sleeps.push(ms) };
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
  const { sleeps, sleep } = recordingSleep();
  const log = recordingLog();
  const client = new GitlabClient({
    url: coordinator.url,
    token: RUNNER_TOKEN,
    systemId: 's_0123456789ab',
    version: '0.1.0',
    sleep,
    random: () => 0.5,
    log,
    ...clientOpts,
  });
  return { coordinator, client, sleeps, log };
}
