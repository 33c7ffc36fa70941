/**
 * The daemon's state machine: starting → running → draining → stopped, or → failed from any of
 * the first three. Every transition is logged (failures at error level); a transition the table
 * does not allow is a bug and throws FleetError(INTERNAL).
 */
import { ErrorCode, FleetError } from '../errors.js';
import type { Logger } from '../util/logger.js';
import type { DaemonState } from './status.js';

const NEXT_STATES: Record<DaemonState, DaemonState[]> = {
  starting: ['running', 'failed'],
  running: ['draining', 'failed'],
  draining: ['stopped', 'failed'],
  stopped: [],
  failed: [],
};

export class DaemonLifecycle {
  private current: DaemonState = 'starting';

  /** Logs the initial `starting` state. */
  constructor(private readonly logger: Logger) {
    this.logger.info('daemon state changed', { event: 'state', state: 'starting' });
  }

  get state(): DaemonState {
    return this.current;
  }

  /** Throws FleetError(INTERNAL) `cannot <action> a daemon that is <state>`. */
  refuse(action: string): never {
    throw new FleetError(ErrorCode.INTERNAL, `cannot ${action} a daemon that is ${this.current}`);
  }

  transition(next: DaemonState, reason?: string): void {
    if (!NEXT_STATES[this.current].includes(next)) {
      throw new FleetError(ErrorCode.INTERNAL, `daemon cannot go from ${this.current} to ${next}`);
    }
    const from = this.current;
    this.current = next;
    const fields = { event: 'state', from, state: next, ...(reason ? { reason } : {}) };
    if (next === 'failed') this.logger.error('daemon state changed', fields);
    else this.logger.info('daemon state changed', fields);
  }
}
