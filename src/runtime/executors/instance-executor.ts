/**
 * The instance executor: every stage runs on the instance itself, through its connector (SSH, or
 * a local process for the `local` provider), with the script on the shell's stdin as GitLab's
 * instance executor does. The build directory lives under the instance's builds root.
 */
import type { Connector } from '../connectors/connector.js';
import type { JobPayload } from '../gitlab/job.js';
import { jobLayout, type JobLayout } from '../script/layout.js';
import { SHELL_DETECT_COMMAND } from '../script/script-writer.js';
import type { StageName } from '../script/stage-script.js';
import {
  BuildError,
  type Executor,
  type JobOutput,
  type StageEnvironment,
  type StageResult,
} from './executor.js';

export interface InstanceExecutorOptions {
  connector: Connector;
  /** Absolute builds root on the instance, e.g. `/var/lib/runfleet/builds` or `<sandbox>/builds`. */
  buildsDir: string;
  /** The slot the job holds on its instance. @default 0 */
  concurrentId?: number;
}

export class InstanceExecutor implements Executor {
  readonly name = 'instance' as const;
  private layout: JobLayout | undefined;

  constructor(private readonly opts: InstanceExecutorOptions) {}

  async prepare(job: JobPayload, output: JobOutput): Promise<void> {
    if (!this.opts.buildsDir.startsWith('/')) {
      throw new BuildError(
        'runner_configuration_error',
        `builds dir must be absolute, got ${this.opts.buildsDir}`,
      );
    }
    this.layout = jobLayout(job, this.opts.buildsDir, this.opts.concurrentId ?? 0);
    output.write(`Preparing the instance executor on ${this.opts.connector.description}\n`, 'stdout');
  }

  stageEnvironment(_stage: StageName): StageEnvironment {
    if (!this.layout) throw new Error('InstanceExecutor.stageEnvironment called before prepare');
    return { layout: this.layout, concurrentId: this.opts.concurrentId ?? 0, extra: [], disposable: false };
  }

  async run(_stage: StageName, script: string, output: JobOutput, signal: AbortSignal): Promise<StageResult> {
    const res = await this.opts.connector.exec(SHELL_DETECT_COMMAND, {
      stdin: script,
      signal,
      onStdout: (c) => output.write(c, 'stdout'),
      onStderr: (c) => output.write(c, 'stderr'),
    });
    return {
      exitCode: res.exitCode,
      ...(res.signal ? { signal: res.signal } : {}),
      ...(res.aborted ? { aborted: true } : {}),
    };
  }

  async cleanup(): Promise<void> {
    // Nothing outlives a stage: the connector kills each command's process tree.
  }
}
