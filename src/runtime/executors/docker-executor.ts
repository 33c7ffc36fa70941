/**
 * The docker executor: the job's image runs `prepare_script`, the steps and `after_script`, one
 * container per stage with the builds dir mounted; `get_sources` and `cleanup_file_variables` run
 * on the instance host through the connector (as GitLab's helper image does), so the job image
 * needs nothing but a POSIX `sh`. Docker is reached through the connector (docker-api.ts).
 */
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import type { PullPolicy } from '../../model/fleet.js';
import type { Connector } from '../connectors/connector.js';
import type { JobPayload } from '../gitlab/job.js';
import { jobLayout, type JobLayout } from '../script/layout.js';
import { SHELL_DETECT_SCRIPT } from '../script/script-writer.js';
import type { StageName } from '../script/stage-script.js';
import {
  dockerThroughConnector,
  ensureImage,
  JOB_LABEL,
  MANAGED_LABEL,
  removeJobContainers,
} from './docker-api.js';
import { systemTime, type Time } from '../../util/time.js';
import { ShellSession } from './shell-session.js';
import {
  BuildError,
  type Executor,
  type JobOutput,
  type StageEnvironment,
  type StageResult,
} from './executor.js';

export interface DockerExecutorOptions {
  connector: Connector;
  /** The Docker socket on the instance. @default /var/run/docker.sock */
  socketPath?: string;
  /** Absolute builds root on the instance host; mounted into every job container. */
  hostBuildsDir: string;
  /** Where it is mounted in the container. @default /builds */
  containerBuildsDir?: string;
  /** Image for jobs that name none. */
  defaultImage: string;
  /** Used when the job sets no `pull_policy`. @default ['always'] */
  pullPolicy?: PullPolicy[];
  privileged?: boolean;
  /** Extra binds, `host:container[:mode]`. */
  volumes?: string[];
  /** The slot the job holds on its instance. @default 0 */
  concurrentId?: number;
  /** Injected for tests; defaults to dockerode through the connector. */
  docker?: Docker;
  /** @default systemTime */
  time?: Time;
}

/** Stages that need git or the host's files: they never run in the job image. */
const HOST_STAGES = new Set<StageName>(['get_sources', 'cleanup_file_variables']);

export class DockerExecutor implements Executor {
  readonly name = 'docker' as const;
  private docker: Docker | undefined;
  private job: JobPayload | undefined;
  private image = '';
  private hostLayout: JobLayout | undefined;
  private containerLayout: JobLayout | undefined;
  /** The host stages share one shell on the instance. */
  private readonly host: ShellSession;

  constructor(private readonly opts: DockerExecutorOptions) {
    this.host = new ShellSession({ connector: opts.connector, time: opts.time });
  }

  async prepare(job: JobPayload, output: JobOutput, signal: AbortSignal): Promise<void> {
    if (!this.opts.hostBuildsDir.startsWith('/')) {
      throw new BuildError(
        'runner_configuration_error',
        `builds dir must be absolute, got ${this.opts.hostBuildsDir}`,
      );
    }
    this.job = job;
    const slot = this.opts.concurrentId ?? 0;
    this.hostLayout = jobLayout(job, this.opts.hostBuildsDir, slot);
    this.containerLayout = jobLayout(job, this.opts.containerBuildsDir ?? '/builds', slot);
    this.image = job.image?.name || this.opts.defaultImage;
    const policies = (job.image?.pull_policy?.length ? job.image.pull_policy : this.opts.pullPolicy) ?? [
      'always',
    ];
    output.write(
      `Using docker executor with image ${this.image} on ${this.opts.connector.description}\n`,
      'stdout',
    );
    this.docker =
      this.opts.docker ??
      dockerThroughConnector(this.opts.connector, this.opts.socketPath ?? '/var/run/docker.sock');
    await this.docker.ping();
    await ensureImage(this.docker, this.image, policies as PullPolicy[], output, signal);
  }

  stageEnvironment(stage: StageName): StageEnvironment {
    const layout = HOST_STAGES.has(stage) ? this.hostLayout : this.containerLayout;
    if (!layout) throw new Error('DockerExecutor.stageEnvironment called before prepare');
    return {
      layout,
      concurrentId: this.opts.concurrentId ?? 0,
      extra: [{ key: 'CI_JOB_IMAGE', value: this.image, public: true }],
      disposable: true,
    };
  }

  async run(stage: StageName, script: string, output: JobOutput, signal: AbortSignal): Promise<StageResult> {
    if (HOST_STAGES.has(stage)) {
      const res = await this.host.run(
        script,
        { stdout: (c) => output.write(c, 'stdout'), stderr: (c) => output.write(c, 'stderr') },
        signal,
      );
      return { exitCode: res.exitCode, ...(res.aborted ? { aborted: true } : {}) };
    }
    return this.runInContainer(stage, script, output, signal);
  }

  private async runInContainer(
    stage: StageName,
    script: string,
    output: JobOutput,
    signal: AbortSignal,
  ): Promise<StageResult> {
    const docker = this.docker;
    const job = this.job;
    if (!docker || !job) throw new Error('DockerExecutor.run called before prepare');
    if (signal.aborted) return { exitCode: null, aborted: true };
    const entrypoint = job.image?.entrypoint;
    const container = await docker.createContainer({
      name: `runfleet-job-${job.id}-${stage.replace(/[^a-zA-Z0-9_.-]/g, '-')}-${Date.now().toString(36)}`,
      Image: this.image,
      Cmd: ['sh', '-c', SHELL_DETECT_SCRIPT],
      ...(entrypoint ? { Entrypoint: entrypoint } : {}),
      OpenStdin: true,
      StdinOnce: true,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      Labels: { [MANAGED_LABEL]: 'true', [JOB_LABEL]: String(job.id), 'io.runfleet.stage': stage },
      HostConfig: {
        Binds: [
          `${this.opts.hostBuildsDir}:${this.opts.containerBuildsDir ?? '/builds'}`,
          ...(this.opts.volumes ?? []),
        ],
        Privileged: this.opts.privileged ?? false,
      },
    });
    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      container.kill().catch(() => undefined);
    };
    try {
      const stream = (await container.attach({
        stream: true,
        stdin: true,
        stdout: true,
        stderr: true,
        hijack: true,
      })) as NodeJS.ReadWriteStream;
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      stdout.on('data', (c: Buffer) => output.write(c, 'stdout'));
      stderr.on('data', (c: Buffer) => output.write(c, 'stderr'));
      const drained = new Promise<void>((resolve) => {
        stream.once('end', resolve);
        stream.once('close', resolve);
        stream.once('error', () => resolve());
      });
      docker.modem.demuxStream(stream, stdout, stderr);
      signal.addEventListener('abort', onAbort, { once: true });
      await container.start();
      stream.end(script);
      const waited = (await container.wait()) as { StatusCode: number };
      // The exit is known; give the last output a moment to arrive through the tunnel.
      await Promise.race([drained, (this.opts.time ?? systemTime).sleep(2000)]);
      return aborted ? { exitCode: null, aborted: true } : { exitCode: waited.StatusCode };
    } finally {
      signal.removeEventListener('abort', onAbort);
      await container.remove({ force: true, v: true }).catch(() => undefined);
    }
  }

  async cleanup(): Promise<void> {
    await this.host.close();
    if (!this.docker || !this.job) return;
    await removeJobContainers(this.docker, this.job.id).catch(() => undefined);
  }
}
