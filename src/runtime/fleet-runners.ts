/**
 * The job runtime the daemon hosts: one `JobIntake` per fleet that has a `gitlab` block,
 * kept in step with the fleet definitions in force. A changed GitLab URL or token reference
 * restarts that fleet's runner (after its running jobs finish); any other change takes effect for
 * the next job. A fleet whose token is missing or refused is retried with a growing pause, and its
 * error is kept for `runfleet status`; it never stops the daemon.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isFleetError } from '../errors.js';
import type { Fleet } from '../model/fleet.js';
import type { ProviderRegistry } from '../providers/registry.js';
import type { Time } from '../util/time.js';
import type { Logger } from '../util/logger.js';
import type { SshConnectorPool } from './connectors/ssh-connector.js';
import { JobIntake } from './job-intake.js';
import type { GitlabClient, GitlabClientOptions } from './gitlab/client.js';
import type { ApiEndpoint } from './gitlab/transport.js';
import { loadSystemId } from './gitlab/runner-info.js';
import { resolveSecret } from './secrets.js';
import { loadRotatedToken, saveRotatedToken } from './rotated-tokens.js';
import type { SlotScheduler } from './slots/index.js';
import type { JobOutcome } from './assigned-job.js';
import type { JobPayload } from './gitlab/job.js';

export interface FleetRunnersOptions {
  scheduler: SlotScheduler;
  providers: ProviderRegistry;
  /** The pooled SSH connections jobs (and readiness probes) run over. Closed by `stop`. */
  ssh: SshConnectorPool;
  /** Holds `known_hosts.json` (pinned host keys) and `system_id`. */
  stateDir: string;
  time: Time;
  logger: Logger;
  version: string;
  env?: NodeJS.ProcessEnv;
  checkIntervalMs?: number;
  /**
   * Builds a fleet's GitLab client once its token is resolved (the composition root passes
   * `(o) => new GitlabClient(o)`; tests may wrap it).
   */
  client: (opts: GitlabClientOptions) => GitlabClient;
  /** Every GitLab API request attempt of a fleet's runner (`gitlab_runner_api_request_statuses_total`). */
  onApiRequest?: (fleet: string, endpoint: ApiEndpoint, status: number) => void;
  onJobDone?: (fleet: string, job: JobPayload, outcome: JobOutcome) => void;
}

export interface RunnerStatus {
  /** `failing`: the runner could not start (token missing or refused) and is retried. */
  state: 'running' | 'failing';
  /** Jobs running now. */
  jobs: number;
  /** Why it is failing; never contains a secret. */
  error?: string;
}

interface RunnerEntry {
  key: string;
  runner: JobIntake;
}

const RETRY_MIN_MS = 10_000;
const RETRY_MAX_MS = 600_000;

export class FleetRunners {
  private readonly runners = new Map<string, RunnerEntry>();
  private readonly failures = new Map<
    string,
    { key: string; error: string; attempts: number; retryAt: number }
  >();
  private systemId: string | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly unsubscribe: () => void;

  constructor(private readonly opts: FleetRunnersOptions) {
    // A removed instance's pooled connection and pinned host key go with it.
    this.unsubscribe = opts.scheduler.subscribe((e) => {
      if (e.kind === 'instance' && e.instanceId && !opts.scheduler.hasInstance(e.fleet, e.instanceId)) {
        void opts.ssh.forgetInstance(e.instanceId).catch(() => undefined);
      }
    });
  }

  /** A fleet's runner for `runfleet status`; undefined for fleets without a `gitlab` block. */
  status(fleet: string): RunnerStatus | undefined {
    const entry = this.runners.get(fleet);
    if (entry) return { state: 'running', jobs: entry.runner.runningJobs };
    const failed = this.failures.get(fleet);
    return failed ? { state: 'failing', jobs: 0, error: failed.error } : undefined;
  }

  /** Brings the runners in line with `fleets` (the definitions in force). Serialised; never throws. */
  sync(fleets: Fleet[]): Promise<void> {
    this.syncing = this.syncing
      .then(() => this.doSync(fleets))
      .catch((e: unknown) => {
        this.opts.logger.error('job runtime sync failed', { error: (e as Error).message });
      });
    return this.syncing;
  }

  /** Stops asking GitLab for jobs; running jobs get `graceMs`, then are stopped hard. */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    this.unsubscribe();
    await this.syncing;
    await Promise.all([...this.runners.values()].map((e) => e.runner.stop(graceMs)));
    this.runners.clear();
    await this.opts.ssh.close();
  }

  private async doSync(fleets: Fleet[]): Promise<void> {
    if (this.stopped) return;
    const wanted = new Map(fleets.filter((f) => f.gitlab).map((f) => [f.name, f]));
    for (const [name, entry] of this.runners) {
      const fleet = wanted.get(name);
      if (!fleet || keyOf(fleet) !== entry.key) {
        this.runners.delete(name);
        this.opts.logger.info('stopping the job runner of a fleet', {
          fleet: name,
          reason: fleet ? 'gitlab settings changed' : 'fleet removed',
        });
        void entry.runner.stop(RETRY_MAX_MS);
      } else {
        entry.runner.update(fleet);
      }
    }
    for (const name of this.failures.keys()) if (!wanted.has(name)) this.failures.delete(name);
    const now = this.opts.time.now().getTime();
    for (const fleet of wanted.values()) {
      if (this.runners.has(fleet.name)) continue;
      const failed = this.failures.get(fleet.name);
      if (failed && failed.key === keyOf(fleet) && failed.retryAt > now) continue;
      await this.startRunner(fleet, now, failed?.key === keyOf(fleet) ? failed.attempts : 0);
    }
  }

  private async startRunner(fleet: Fleet, now: number, attempts: number): Promise<void> {
    const gitlab = fleet.gitlab!;
    const log = this.opts.logger.child({ fleet: fleet.name });
    try {
      const configured = await resolveSecret(gitlab.token, `fleet ${fleet.name} gitlab.token`, this.opts.env);
      // A token rotated by an earlier run replaces the configured one it revoked.
      const token = (await loadRotatedToken(this.opts.stateDir, fleet.name, configured)) ?? configured;
      this.systemId ??= await loadSystemId({ path: join(this.opts.stateDir, 'system_id') });
      const clientOpts: GitlabClientOptions = {
        url: gitlab.url,
        token,
        systemId: this.systemId,
        version: this.opts.version,
        info: { executor: fleet.executor, name: `runfleet-${fleet.name}` },
        time: this.opts.time,
        log: log.child({ component: 'gitlab' }),
        ...(this.opts.onApiRequest
          ? { onApiRequest: (endpoint, status) => this.opts.onApiRequest?.(fleet.name, endpoint, status) }
          : {}),
      };
      const client = this.opts.client(clientOpts);
      const tlsCaChain = await gitlabCaChain(gitlab.url, this.opts.env ?? process.env, log);
      const runner = new JobIntake(fleet, {
        scheduler: this.opts.scheduler,
        providers: this.opts.providers,
        ssh: this.opts.ssh,
        client,
        token,
        systemId: this.systemId,
        version: this.opts.version,
        time: this.opts.time,
        logger: log,
        checkIntervalMs: this.opts.checkIntervalMs,
        onJobDone: this.opts.onJobDone,
        ...(tlsCaChain ? { tlsCaChain } : {}),
        onTokenRotated: (next, expiresAt) =>
          saveRotatedToken(this.opts.stateDir, fleet.name, gitlab.token, configured, next, expiresAt),
      });
      await runner.start();
      this.runners.set(fleet.name, { key: keyOf(fleet), runner });
      this.failures.delete(fleet.name);
    } catch (e) {
      const pause = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempts);
      const message = (e as Error).message;
      const hint = isFleetError(e) ? e.hint : undefined;
      log.error('cannot start the job runner; retrying later', { error: message, hint, retry_in_ms: pause });
      this.failures.set(fleet.name, {
        key: keyOf(fleet),
        error: message,
        attempts: attempts + 1,
        retryAt: now + pause,
      });
    }
  }
}

/**
 * GitLab's CA chain for jobs (`CI_SERVER_TLS_CA_FILE`, docs/gitlab-job-api.md §5 "Git"): the
 * manager trusts a GitLab with a private CA through `NODE_EXTRA_CA_CERTS`, and its jobs' git
 * gets the same file, as GitLab Runner hands on the chain it verified GitLab with.
 */
async function gitlabCaChain(url: string, env: NodeJS.ProcessEnv, log: Logger): Promise<string | undefined> {
  const path = env['NODE_EXTRA_CA_CERTS'];
  if (!path || !url.startsWith('https:')) return undefined;
  try {
    const pem = await readFile(path, 'utf8');
    return pem.includes('-----BEGIN CERTIFICATE-----') ? pem : undefined;
  } catch (e) {
    log.warn('cannot read NODE_EXTRA_CA_CERTS for CI_SERVER_TLS_CA_FILE', {
      path,
      error: (e as NodeJS.ErrnoException).code ?? 'error',
    });
    return undefined;
  }
}

/** Runners restart when the GitLab URL, the token reference or request_concurrency changes. */
function keyOf(fleet: Fleet): string {
  const g = fleet.gitlab;
  return `${g?.url ?? ''}|${JSON.stringify(g?.token ?? null)}|${g?.request_concurrency ?? 1}`;
}
