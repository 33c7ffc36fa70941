/**
 * The job runtime the daemon hosts: one `JobIntake` per fleet that has a `gitlab` block,
 * kept in step with the fleet definitions in force. A changed GitLab URL or token reference
 * restarts that fleet's runner (after its running jobs finish); any other change takes effect for
 * the next job. A fleet whose token is missing or refused is retried with a growing pause, and its
 * error is kept for `runfleet status`; it never stops the daemon.
 *
 * With several managers (README "Several managers") a fleet's runner runs only while this manager
 * owns the fleet (`owns`): a lost lease stops asking GitLab for its jobs at once (`ownershipLost`),
 * without waiting for the daemon's next pass, which needs the database. Its running jobs go on and
 * report to GitLab, as gitlab-runner's graceful stop lets them; their own timeouts bound them.
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
import type { CacheStores } from './cache/cache-stores.js';

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
  /** Where jobs' caches are kept (the composition root builds it, with its S3 client factory). */
  caches?: CacheStores;
  /** Every GitLab API request attempt of a fleet's runner (`gitlab_runner_api_request_statuses_total`). */
  onApiRequest?: (fleet: string, endpoint: ApiEndpoint, status: number) => void;
  onJobDone?: (fleet: string, job: JobPayload, outcome: JobOutcome) => void;
  /** Whether this manager owns `fleet` now (its lease). @default every fleet */
  owns?: (fleet: string) => boolean;
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
  /** Runners stopped while their jobs still run (a lost lease, a removed fleet); `stop` waits for them. */
  private readonly leaving = new Set<JobIntake>();
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
    const all = [...[...this.runners.values()].map((e) => e.runner), ...this.leaving];
    await Promise.all(all.map((r) => r.stop(graceMs)));
    this.runners.clear();
    this.opts.caches?.destroy();
    await this.opts.ssh.close();
  }

  /**
   * Stops asking GitLab for jobs of `fleets` now (their leases ran out or were handed over). Their
   * running jobs are not stopped: they finish and report. A later `sync` starts the runners again
   * once the fleets are owned again.
   */
  ownershipLost(fleets: readonly string[]): void {
    for (const name of fleets) {
      const entry = this.runners.get(name);
      if (!entry) continue;
      this.runners.delete(name);
      this.opts.logger.info('stopping the job runner of a fleet', { fleet: name, reason: 'lease lost' });
      this.retire(entry.runner);
    }
  }

  /** Stops `runner` asking for jobs; its running jobs end on their own (or at `stop`'s grace). */
  private retire(runner: JobIntake, graceMs?: number): void {
    this.leaving.add(runner);
    void runner.stop(graceMs).finally(() => this.leaving.delete(runner));
  }

  private owns(fleet: string): boolean {
    return this.opts.owns?.(fleet) ?? true;
  }

  private async doSync(fleets: Fleet[]): Promise<void> {
    if (this.stopped) return;
    // A view computed before a lease was lost must not start that fleet's runner again.
    const wanted = new Map(fleets.filter((f) => f.gitlab && this.owns(f.name)).map((f) => [f.name, f]));
    for (const [name, entry] of this.runners) {
      const fleet = wanted.get(name);
      if (!fleet || keyOf(fleet) !== entry.key) {
        this.runners.delete(name);
        const lost = !fleet && fleets.some((f) => f.name === name && f.gitlab);
        this.opts.logger.info('stopping the job runner of a fleet', {
          fleet: name,
          reason: fleet ? 'gitlab settings changed' : lost ? 'lease lost' : 'fleet removed',
        });
        this.retire(entry.runner, lost ? undefined : RETRY_MAX_MS);
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
        ...(this.opts.caches ? { caches: this.opts.caches } : {}),
        onJobDone: this.opts.onJobDone,
        ...(tlsCaChain ? { tlsCaChain } : {}),
        onTokenRotated: (next, expiresAt) =>
          saveRotatedToken(this.opts.stateDir, fleet.name, gitlab.token, configured, next, expiresAt),
      });
      await runner.start();
      if (!this.owns(fleet.name)) {
        // The lease ran out while the runner was being verified.
        this.retire(runner);
        return;
      }
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
