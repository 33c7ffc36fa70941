/**
 * The test coordinator in a process of its own for bench/artifacts.ts, so the manager's CPU and
 * RSS figures are its own: artifacts go to disk here, with a size limit far above the bench's.
 * Driven over IPC; loopback only.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exampleJob, type ExampleJobOptions } from '../src/devtools/coordinator/example-job.js';
import { startCoordinator, type Coordinator } from '../src/devtools/coordinator/server.js';

type Msg =
  { op: 'start'; token: string } | { op: 'enqueue'; id: number; opts: ExampleJobOptions } | { op: 'close' };

let coordinator: Coordinator | undefined;
// The bench that forked this child is gone (it crashed, or was killed): so is its coordinator.
process.on('disconnect', () => process.exit(0));
process.on('message', (raw) => {
  const m = raw as Msg;
  void (async () => {
    if (m.op === 'start') {
      coordinator = await startCoordinator({
        runnerTokens: [m.token],
        maxArtifactBytes: 64 * 1024 * 1024 * 1024,
        artifactsDir: mkdtempSync(join(tmpdir(), 'rf-bench-artifacts-')),
      });
      process.send?.({ ev: 'started', url: coordinator.url });
    } else if (m.op === 'enqueue') {
      coordinator?.enqueue(exampleJob(m.id, m.opts));
      process.send?.({ ev: 'enqueued', id: m.id });
    } else {
      await coordinator?.close();
      process.send?.({ ev: 'closed' });
      process.exit(0);
    }
  })();
});
