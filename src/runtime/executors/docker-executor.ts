/**
 * The docker executor, in the shape of gitlab-runner's (executors/docker): `prepare` makes a
 * user-defined bridge network for the build (`CI_BUILD_NETWORK_NAME`), starts the job's services
 * on it (docker-services.ts) and waits for them, and creates ONE build container from the job's
 * image. `prepare_script`, the steps and `after_script` each restart that container with the stage
 * script on its stdin, so whatever a stage leaves outside the project dir (in /tmp, $HOME,
 * installed packages) is still there in the next one, as on gitlab-runner. The builds dir on the
 * instance is mounted into it; `get_sources` and `cleanup_file_variables` run on the instance host
 * through the connector (where GitLab uses its helper image), so the job image needs nothing but
 * a POSIX `sh`. Docker is reached through the connector (docker-api.ts). Image and service names
 * are expanded with the job's variables; pulls carry the registry credentials docker-auth.ts
 * resolves. `cleanup` removes every container and the network; a job that never got to its
 * cleanup (the manager crashed) is swept by the next job in the same slot, by label.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import type { PullPolicy, SecretRef } from '../../model/fleet.js';
import type { Connector } from '../connectors/connector.js';
import type { ExecutorOptions, JobImage, JobPayload, JobVariable } from '../gitlab/job.js';
import { jobLayout, jobVariable, type JobLayout } from '../script/layout.js';
import { SHELL_DETECT_SCRIPT } from '../script/script-writer.js';
import { shellQuote } from '../script/shell-quote.js';
import type { StageName } from '../script/stage-script.js';
import { jobVariables } from '../script/variables.js';
import { resolveSecret } from '../secrets.js';
import { systemTime, type Time } from '../../util/time.js';
import {
  dockerThroughConnector,
  ensureImage,
  INSTANCE_LABEL,
  JOB_LABEL,
  MANAGED_LABEL,
  removeLeftovers,
  SLOT_LABEL,
  TYPE_LABEL,
} from './docker-api.js';
import { authForImage, registryEntries, type AuthSource, type RegistryEntry } from './docker-auth.js';
import { expandWith } from './docker-names.js';
import { followServiceLogs, startServices, waitForServices } from './docker-services.js';
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
  /** Seconds to wait for services; ≤ 0 does not wait (gitlab-runner's -1). @default 30 */
  waitForServicesTimeout?: number;
  /** The fleet's `DOCKER_AUTH_CONFIG`, used when the job sets none. */
  authConfig?: SecretRef;
  /** A Docker config file (`config.json`) on the manager whose `auths` apply to every job. */
  configFile?: string;
  /** The slot the job holds on its instance. @default 0 */
  concurrentId?: number;
  /**
   * The instance's id: labelled on everything, so the next job in the same slot of the same
   * instance can remove what a crashed manager left. Without it nothing is swept.
   */
  instanceId?: string;
  /** Injected for tests; defaults to dockerode through the connector. */
  docker?: Docker;
  /** @default systemTime */
  time?: Time;
}

/** Stages that need git or the host's files: they never run in the job image. */
const HOST_STAGES = new Set<StageName>(['get_sources', 'cleanup_file_variables']);
const YELLOW = '\x1b[0;33m';
const RESET = '\x1b[0;m';

/** gitlab-runner's boolean variables (Go's strconv.ParseBool). */
function isTrue(value: string | undefined): boolean {
  return ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value ?? '');
}

/** Refuses `executor_opts` keys gitlab-runner's docker executor does not know (spec.go). */
function checkExecutorOptions(opts: ExecutorOptions | null | undefined, where: string): void {
  if (!opts) return;
  const unknown = Object.keys(opts).filter((k) => k !== 'docker' && k !== 'kubernetes');
  const docker = opts.docker ?? {};
  unknown.push(
    ...Object.keys(docker)
      .filter((k) => k !== 'platform' && k !== 'user')
      .map((k) => `docker.${k}`),
  );
  if (unknown.length > 0) {
    throw new BuildError(
      'runner_configuration_error',
      `${where}: unsupported executor_opts ${unknown.join(', ')} (the docker executor supports docker.platform and docker.user)`,
    );
  }
}

export class DockerExecutor implements Executor {
  readonly name = 'docker' as const;
  private docker: Docker | undefined;
  private job: JobPayload | undefined;
  private image = '';
  private hostLayout: JobLayout | undefined;
  private containerLayout: JobLayout | undefined;
  private network = '';
  private build: Docker.Container | undefined;
  private stopLogs: (() => void) | undefined;
  /** The host stages share one shell on the instance. */
  private readonly host: ShellSession;
  private readonly time: Time;

  constructor(private readonly opts: DockerExecutorOptions) {
    this.time = opts.time ?? systemTime;
    this.host = new ShellSession({ connector: opts.connector, time: opts.time });
  }

  private get slot(): number {
    return this.opts.concurrentId ?? 0;
  }

  async prepare(job: JobPayload, output: JobOutput, signal: AbortSignal): Promise<void> {
    if (!this.opts.hostBuildsDir.startsWith('/')) {
      throw new BuildError(
        'runner_configuration_error',
        `builds dir must be absolute, got ${this.opts.hostBuildsDir}`,
      );
    }
    this.job = job;
    this.hostLayout = jobLayout(job, this.opts.hostBuildsDir, this.slot);
    this.containerLayout = jobLayout(job, this.opts.containerBuildsDir ?? '/builds', this.slot);
    const services = job.services ?? [];
    checkExecutorOptions(job.image?.executor_opts, 'image');
    services.forEach((s, i) => checkExecutorOptions(s.executor_opts, `services[${i}]`));
    const prefix = `runfleet-job-${job.id}-${randomBytes(4).toString('hex')}`;
    this.network = `${prefix}-network`;
    // What `$VAR` in image and service names expands against: the job's variables as a stage sees them.
    const vars = jobVariables(job, {
      layout: this.containerLayout,
      concurrentId: this.slot,
      jobStatus: 'running',
      extra: this.runnerVariables(),
      disposable: true,
    });
    this.image = expandWith(job.image?.name || '', vars) || expandWith(this.opts.defaultImage, vars);
    output.write(
      `Using docker executor with image ${this.image} on ${this.opts.connector.description}\n`,
      'stdout',
    );
    const docker = (this.docker =
      this.opts.docker ??
      dockerThroughConnector(this.opts.connector, this.opts.socketPath ?? '/var/run/docker.sock'));
    await docker.ping();
    // Whatever a job in this slot left behind when the manager died before its cleanup.
    const instance = this.opts.instanceId;
    if (instance) await removeLeftovers(docker, { instance, slot: this.slot, exceptJob: job.id });
    const auth = await this.registryAuth(job, vars, output);
    const pullImage = (image: string, def: JobImage | null | undefined) =>
      ensureImage(docker, image, this.policies(def), output, signal, {
        auth: authForImage(image, auth),
        ...(def?.executor_opts?.docker?.platform
          ? { platform: expandWith(def.executor_opts.docker.platform, vars) }
          : {}),
      });
    await pullImage(this.image, job.image);

    const labels = {
      [MANAGED_LABEL]: 'true',
      [JOB_LABEL]: String(job.id),
      [SLOT_LABEL]: String(this.slot),
      ...(instance ? { [INSTANCE_LABEL]: instance } : {}),
    };
    await docker.createNetwork({
      Name: this.network,
      Driver: 'bridge',
      CheckDuplicate: true,
      Labels: labels,
    });
    const binds = [
      `${this.opts.hostBuildsDir}:${this.opts.containerBuildsDir ?? '/builds'}`,
      ...(this.opts.volumes ?? []),
    ];
    if (services.length > 0) {
      const started = await startServices(
        {
          docker,
          network: this.network,
          prefix,
          labels,
          variables: vars,
          binds,
          privileged: this.opts.privileged ?? false,
          output,
          ensureImage: (image, def) => pullImage(image, def),
        },
        services,
      );
      if (isTrue(jobVariable(job, 'CI_DEBUG_SERVICES'))) {
        this.stopLogs = await followServiceLogs(docker, started, output);
      }
      await waitForServices(started, {
        docker,
        connector: this.opts.connector,
        output,
        time: this.time,
        timeoutSeconds: this.opts.waitForServicesTimeout ?? 30,
        signal,
      });
    }
    this.build = await this.createBuildContainer(docker, `${prefix}-build`, labels, binds, vars);
    if (this.umaskZero) {
      // The image's user may not be the instance's: the dirs the stages write must be writable.
      const dirs = [this.hostLayout.projectDir, this.hostLayout.tmpDir].map(shellQuote).join(' ');
      await this.opts.connector.exec(`umask 0000 && mkdir -p ${dirs}`, { signal });
    }
  }

  /**
   * gitlab-runner's docker executor runs its helper stages under `umask 0000` so that an image
   * whose user is not root can still write the sources and the job's files;
   * `FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR=true` turns that off.
   */
  private get umaskZero(): boolean {
    return !this.job || !isTrue(jobVariable(this.job, 'FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR'));
  }

  private policies(def: JobImage | null | undefined): PullPolicy[] {
    const written = def?.pull_policy?.length ? def.pull_policy : this.opts.pullPolicy;
    return (written ?? ['always']) as PullPolicy[];
  }

  private runnerVariables(): JobVariable[] {
    return [{ key: 'CI_BUILD_NETWORK_NAME', value: this.network, public: true }];
  }

  /** Every registry credential the job may use, first source first (docker-auth.ts). */
  private async registryAuth(
    job: JobPayload,
    vars: readonly JobVariable[],
    output: JobOutput,
  ): Promise<RegistryEntry[]> {
    const sources: AuthSource[] = [];
    const warn = (m: string) => output.write(`${YELLOW}WARNING: ${m}${RESET}\n`, 'stdout');
    const fromJob = [...vars].reverse().find((v) => v.key === 'DOCKER_AUTH_CONFIG');
    if (fromJob?.value) {
      sources.push({ name: '$DOCKER_AUTH_CONFIG', config: fromJob.value });
    } else if (this.opts.authConfig) {
      try {
        sources.push({
          name: '$DOCKER_AUTH_CONFIG (fleet docker.auth_config)',
          config: await resolveSecret(this.opts.authConfig, 'docker.auth_config'),
        });
      } catch (e) {
        warn(`Failed to resolve credentials from the fleet's docker.auth_config: ${(e as Error).message}`);
      }
    }
    if (this.opts.configFile) {
      try {
        sources.push({ name: this.opts.configFile, config: await readFile(this.opts.configFile, 'utf8') });
      } catch (e) {
        warn(
          `Failed to resolve credentials from ${this.opts.configFile}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'}`,
        );
      }
    }
    if (job.credentials?.length) {
      sources.push({ name: 'job payload (GitLab Registry)', credentials: job.credentials });
    }
    const resolved = registryEntries(sources);
    resolved.warnings.forEach(warn);
    return resolved.entries;
  }

  private async createBuildContainer(
    docker: Docker,
    name: string,
    labels: Record<string, string>,
    binds: string[],
    vars: readonly JobVariable[],
  ): Promise<Docker.Container> {
    const image = this.job?.image;
    const user = image?.executor_opts?.docker?.user;
    const platform = image?.executor_opts?.docker?.platform;
    return docker.createContainer({
      _query: { name, ...(platform ? { platform: expandWith(platform, vars) } : {}) },
      _body: {
        Image: this.image,
        Cmd: ['sh', '-c', SHELL_DETECT_SCRIPT],
        ...(image?.entrypoint?.length ? { Entrypoint: image.entrypoint } : {}),
        ...(user !== undefined && user !== '' ? { User: expandWith(String(user), vars) } : {}),
        OpenStdin: true,
        StdinOnce: true,
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        Labels: { ...labels, [TYPE_LABEL]: 'build' },
        HostConfig: { Binds: binds, Privileged: this.opts.privileged ?? false, NetworkMode: this.network },
        NetworkingConfig: { EndpointsConfig: { [this.network]: { Aliases: ['build', name] } } },
      },
    } as unknown as Docker.ContainerCreateOptions);
  }

  stageEnvironment(stage: StageName): StageEnvironment {
    const layout = HOST_STAGES.has(stage) ? this.hostLayout : this.containerLayout;
    if (!layout) throw new Error('DockerExecutor.stageEnvironment called before prepare');
    return {
      layout,
      concurrentId: this.slot,
      extra: [{ key: 'CI_JOB_IMAGE', value: this.image, public: true }, ...this.runnerVariables()],
      disposable: true,
    };
  }

  async run(stage: StageName, script: string, output: JobOutput, signal: AbortSignal): Promise<StageResult> {
    if (HOST_STAGES.has(stage)) {
      const res = await this.host.run(
        this.umaskZero ? `umask 0000\n${script}` : script,
        { stdout: (c) => output.write(c, 'stdout'), stderr: (c) => output.write(c, 'stderr') },
        signal,
      );
      return { exitCode: res.exitCode, ...(res.aborted ? { aborted: true } : {}) };
    }
    return this.runInBuildContainer(script, output, signal);
  }

  /** Starts the build container again with `script` on its stdin and waits for it to stop. */
  private async runInBuildContainer(
    script: string,
    output: JobOutput,
    signal: AbortSignal,
  ): Promise<StageResult> {
    const docker = this.docker;
    const container = this.build;
    if (!docker || !container) throw new Error('DockerExecutor.run called before prepare');
    if (signal.aborted) return { exitCode: null, aborted: true };
    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      // Killed, not removed: after_script starts the same container again.
      container.kill().catch(() => undefined);
    };
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
    try {
      await container.start();
      stream.end(script);
      const waited = (await container.wait()) as { StatusCode: number };
      // The exit is known; give the last output a moment to arrive through the tunnel.
      await Promise.race([drained, this.time.sleep(2000)]);
      return aborted ? { exitCode: null, aborted: true } : { exitCode: waited.StatusCode };
    } finally {
      signal.removeEventListener('abort', onAbort);
      (stream as unknown as { destroy?: () => void }).destroy?.();
    }
  }

  async cleanup(): Promise<void> {
    this.stopLogs?.();
    this.stopLogs = undefined;
    await this.host.close();
    if (!this.docker || !this.job) return;
    // Containers first (the build one, services), then the network they were on.
    await removeLeftovers(this.docker, { jobId: this.job.id }).catch(() => undefined);
  }
}
