/**
 * The provider seam, in the spirit of GitLab's fleeting plugins: a provider owns groups of
 * instances (an Auto Scaling group, a local pool, a set of static hosts) and can observe them, grow
 * them by N, shrink them by specific ids, and say how to connect to one instance.
 *
 * Contracts every implementation keeps:
 * - `observe` never mutates anything and reads all requested groups in one batched call set.
 * - Every mutating call is idempotent and safe to retry after a timeout or crash.
 * - No method caches connection details: `connectInfo` is fresh at every call.
 * - Errors are `FleetError`s with a code, a hint and `retryable` set.
 */
import type { Fleet, ProviderType } from '../model/fleet.js';
import type { GroupRef, ObservedGroup } from '../model/observed.js';
import type { GroupDiff } from '../model/settings-diff.js';

export interface ConnectInfo {
  id: string;
  /** Address to dial, already chosen by `use_external_addr`. */
  address: string;
  port: number;
  username: string;
  protocol: 'ssh' | 'local';
  /** PEM private key; never logged. */
  privateKey?: string;
  /** For `local`: the sandbox directory jobs run in. */
  workdir?: string;
}

export interface Provider {
  readonly type: ProviderType;

  /**
   * Reads every instance of the given groups. Never mutates. A group that does not exist comes back
   * with `exists: false`, not as an error.
   */
  observe(groups: GroupRef[], signal?: AbortSignal): Promise<ObservedGroup[]>;

  /**
   * Optional, pure (no I/O): the provider-managed settings of the fleet's group that differ from
   * the fleet, as `group.<key>` changes (e.g. an Auto Scaling group's max_size). The planner shows
   * them and `applyGroup` makes them match. Providers without such settings leave it out.
   */
  diffGroup?(fleet: Fleet, group: ObservedGroup | undefined): GroupDiff;

  /** Creates the group if needed and makes its provider-managed settings match the fleet. Idempotent. */
  applyGroup(fleet: Fleet, signal?: AbortSignal): Promise<void>;

  /**
   * Removes a group the fleet no longer wants: an owned group is deleted, an adopted one is only
   * released (runfleet's tags removed). Called after its instances were decreased. Idempotent.
   */
  deleteGroup(ref: GroupRef, fleet: Fleet | undefined, signal?: AbortSignal): Promise<void>;

  /**
   * Asks for `n` more instances; returns how many were requested (may be fewer, e.g. a static
   * provider's host count). New instances show up in `observe`.
   */
  increase(ref: GroupRef, n: number, signal?: AbortSignal): Promise<number>;

  /**
   * Removes exactly these instances and returns the ids it removed (already-gone ids count as
   * removed). Never removes any other instance. Safe to retry.
   */
  decrease(ref: GroupRef, ids: string[], signal?: AbortSignal): Promise<string[]>;

  /** Address, user and credentials for one instance, fresh at each call. */
  connectInfo(ref: GroupRef, id: string, signal?: AbortSignal): Promise<ConnectInfo>;

  /** Cheap liveness check of one instance; false means unhealthy. */
  heartbeat(ref: GroupRef, id: string, signal?: AbortSignal): Promise<boolean>;

  /**
   * Optional: every group this provider can see that is tagged as runfleet's, fleet files or not.
   * The planner observes the ones no fleet defines and shows them as orphans (never deletes them).
   */
  discover?(signal?: AbortSignal): Promise<GroupRef[]>;
}
