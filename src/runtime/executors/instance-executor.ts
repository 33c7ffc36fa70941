/**
 * The instance executor: every stage runs on the instance itself, through its connector (SSH, or
 * a local process for the `local` provider), with the scripts on the stdin of one shell per job
 * (shell-session.ts) as GitLab's instance executor feeds its shell. The build directory lives
 * under the instance's builds root.
 */
import type { Connector } from '../connectors/connector.js';
import type { JobPayload } from '../gitlab/job.js';
import { jobLayout, type JobLayout } from '../script/layout.js';
import { runsInSessionShell, type StageName } from '../script/stage-script.js';
import { probeShell, ShellSession } from './shell-session.js';
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
  /** Let jobs set GIT_CLONE_PATH (GitLab Runner's `custom_build_dir`). @default false */
  customBuildDir?: boolean;
  /** The runner's short token: its own directory under a builds root other runners share. */
  runnerDir?: string;
}

export class InstanceExecutor implements Executor {
  readonly name = 'instance' as const;
  private layout: JobLayout | undefined;
  private hostname: string | undefined;
  private readonly session: ShellSession;

  constructor(private readonly opts: InstanceExecutorOptions) {
    this.session = new ShellSession({ connector: opts.connector });
  }

  /** Shell sessions this job opened so far (one, plus one after each killed stage). */
  get sessionsStarted(): number {
    return this.session.started;
  }

  async prepare(job: JobPayload, output: JobOutput): Promise<void> {
    if (!this.opts.buildsDir.startsWith('/')) {
      throw new BuildError(
        'runner_configuration_error',
        `builds dir must be absolute, got ${this.opts.buildsDir}`,
      );
    }
    this.layout = jobLayout(job, this.opts.buildsDir, this.opts.concurrentId ?? 0, {
      customBuildDir: this.opts.customBuildDir ?? false,
      ...(this.opts.runnerDir ? { runnerDir: this.opts.runnerDir } : {}),
    });
    output.write(`Preparing the instance executor on ${this.opts.connector.description}\n`, 'stdout');
    // Reaches the instance, once per instance: which shell it has, and its name.
    this.hostname = (await probeShell(this.opts.connector)).hostname;
  }

  knownOutput(stage: StageName): string | undefined {
    return stage === 'prepare_script' && this.hostname ? `Running on ${this.hostname}...\n` : undefined;
  }

  stageEnvironment(_stage: StageName): StageEnvironment {
    if (!this.layout) throw new Error('InstanceExecutor.stageEnvironment called before prepare');
    return { layout: this.layout, concurrentId: this.opts.concurrentId ?? 0, extra: [], disposable: false };
  }

  async run(stage: StageName, script: string, output: JobOutput, signal: AbortSignal): Promise<StageResult> {
    return this.session.run(
      script,
      { stdout: (c) => output.write(c, 'stdout'), stderr: (c) => output.write(c, 'stderr') },
      signal,
      { inline: runsInSessionShell(stage) },
    );
  }

  async cleanup(): Promise<void> {
    // Ends the job's shell and kills whatever the job left running in its process group.
    await this.session.close();
  }
}
