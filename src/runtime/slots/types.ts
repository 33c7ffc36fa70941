/**
 * The seam between the job runtime and the scaling daemon: job slots, reservations, acquisitions,
 * and the demand they add up to. The runtime calls `reserve`/`acquire`/`release`; the daemon reads
 * `demand` and reacts to every change event at once.
 */
import type { Demand } from '../../model/observed.js';

/** A promise to take a job soon: made only while an idle slot on a ready instance exists. */
export interface Reservation {
  readonly id: number;
  readonly fleet: string;
  /**
   * False once acquired, unreserved, or revoked because the idle capacity it stood for went away
   * (scale-in). Acquiring with a revoked reservation still works: the job waits as pending.
   */
  readonly valid: boolean;
}

/** A job slot held by a running job. */
export interface Acquisition {
  readonly id: number;
  readonly fleet: string;
  readonly instanceId: string;
  /** 0-based slot on the instance (`CI_CONCURRENT_ID`). */
  readonly slot: number;
  /** ISO time. */
  readonly acquiredAt: string;
  /** True when the instance vanished under the job (spot reclaim, removed outside runfleet). */
  readonly lost: boolean;
}

export interface ReleaseOptions {
  /** The job failed (counted; does not by itself condemn the instance). */
  failed?: boolean;
  /** The instance itself misbehaved (connection lost, disk full): drain it as unhealthy. */
  instanceBroken?: boolean;
}

/** Slot states as GitLab's taskscaler reports them (`fleeting_taskscaler_tasks{state}`). */
export interface SlotCounts {
  /** Free slots on ready instances, not reserved. */
  idle: number;
  reserved: number;
  acquired: number;
  /** Jobs waiting in `acquire` for a slot. */
  pending: number;
  /** Free slots of draining instances (max_use_count reached, spot notice, scale-in claim). */
  unavailable: number;
  /** Free slots of instances drained as unhealthy. */
  unhealthy: number;
}

export type SlotEventKind =
  'reserve' | 'unreserve' | 'acquire' | 'pending' | 'release' | 'instance' | 'revoke' | 'timeout';

export interface SlotEvent {
  fleet: string;
  kind: SlotEventKind;
  instanceId?: string;
}

export type SlotListener = (event: SlotEvent) => void;

/** What the capacity loop needs from the job runtime. */
export interface DemandSource {
  /** Current demand of a fleet in job slots; zeros for an unknown fleet. */
  demand(fleet: string): Demand;
  /** Called synchronously on every slot transition. Returns the unsubscribe function. */
  subscribe(listener: SlotListener): () => void;
}

/** Per-fleet settings the scheduler needs; taken from the fleet spec by the daemon. */
export interface FleetSlotSettings {
  capacityPerInstance: number;
  /** 0 = unlimited. */
  maxUseCount: number;
  /** 0 = unlimited; used only to tell the two reserve failure kinds apart in metrics. */
  maxInstances: number;
  /** How long `acquire` waits for a slot (GitLab's instance_acquire_timeout). */
  acquireTimeoutMs: number;
}

/** Why an instance takes no new jobs. */
export type UnavailableReason =
  'max_use_count' | 'unhealthy' | 'spot' | 'scale_in' | 'idle_time' | 'fleet_deleted';

/** One instance as the scheduler sees it, for status output. */
export interface SlotInstanceView {
  id: string;
  available: boolean;
  reason?: UnavailableReason;
  useCount: number;
  acquired: number;
  /** Slot indexes held by jobs. */
  slots: number[];
}
