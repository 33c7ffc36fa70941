/**
 * The test coordinator in a process of its own, driven over IPC by bench/dispatch.ts, so the
 * benchmark's CPU figures are the manager's alone. Timestamps are absolute (`timeOrigin + now`),
 * comparable across the two processes. Loopback only.
 */
import { exampleJob } from '../src/devtools/coordinator/example-job.js';
import { startCoordinator, type Coordinator } from '../src/devtools/coordinator/server.js';

type Msg =
  | { op: 'start'; token: string; longPollMs: number; requestDelayMs: number; intervalSeconds: number }
  | { op: 'enqueue'; jobs: { id: number; script: string[] }[] }
  | { op: 'requests' }
  | { op: 'log'; id: number }
  | { op: 'close' };

const at = () => performance.timeOrigin + performance.now();
const send = (m: unknown) => process.send?.(m);
let coordinator: Coordinator | undefined;

/** When the job's first and last log lines were written at the manager (their timestamps). */
function lineTimes(log: string): { firstLine?: number; lastLine?: number } {
  const stamps = [...log.matchAll(/^(\d{4}-\d\d-\d\dT[\d:.]+Z) /gm)].map((m) => Date.parse(m[1]!));
  return stamps.length ? { firstLine: stamps[0], lastLine: stamps[stamps.length - 1] } : {};
}
/** Jobs whose first PATCH was not seen yet. */
const traced = new Set<number>();

// The bench that forked this child is gone (it crashed, or was killed): so is its coordinator.
process.on('disconnect', () => process.exit(0));
process.on('message', (raw) => {
  const m = raw as Msg;
  void (async () => {
    switch (m.op) {
      case 'start':
        coordinator = await startCoordinator({
          runnerTokens: [m.token],
          longPollMs: m.longPollMs,
          requestDelayMs: m.requestDelayMs,
          traceUpdateIntervalSeconds: m.intervalSeconds,
          onEvent: (e) => {
            if (e.type === 'trace') {
              if (traced.has(e.jobId)) return;
              traced.add(e.jobId);
              send({ ev: 'trace', id: e.jobId, at: at(), log: coordinator?.job(e.jobId)?.log ?? '' });
            } else if (e.type === 'assigned') send({ ev: 'assigned', id: e.jobId, at: at() });
            else {
              const full = coordinator?.job(e.jobId)?.log ?? '';
              const log = e.state === 'success' ? '' : full.slice(-4000);
              send({ ev: 'finished', id: e.jobId, at: at(), state: e.state, log, ...lineTimes(full) });
            }
          },
        });
        send({ ev: 'started', url: coordinator.url });
        break;
      case 'enqueue': {
        const t = at();
        for (const j of m.jobs) coordinator?.enqueue(exampleJob(j.id, { script: j.script }));
        send({ ev: 'enqueued', at: t });
        break;
      }
      case 'requests': {
        const all = coordinator?.requests() ?? [];
        const kinds: Record<string, number> = {};
        for (const r of all) {
          const kind = `${r.method} ${r.url.replace(/\/\d+/g, '/:id').replace(/\?.*/, '')}`;
          kinds[kind] = (kinds[kind] ?? 0) + 1;
        }
        send({ ev: 'requests', n: all.filter((r) => r.url.includes('jobs/request')).length, kinds });
        break;
      }
      case 'log':
        send({ ev: 'log', id: m.id, log: coordinator?.job(m.id)?.log ?? '' });
        break;
      case 'close':
        await coordinator?.close();
        process.exit(0);
    }
  })();
});
