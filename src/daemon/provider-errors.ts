/**
 * The last provider error of each fleet (an observe, apply step, removal retry or heartbeat the
 * provider could not carry out), with its time and code, for `runfleet status` and the
 * `runfleet_provider_errors_total{fleet,code}` metric. Under an outage these are otherwise only
 * warnings in the log; an operator asking "why does this fleet not move?" finds them here.
 */
import { asError, isFleetError } from '../errors.js';
import type { Time } from '../util/time.js';
import type { DaemonMetrics } from './metrics.js';

export interface ProviderErrorStatus {
  at: string;
  code: string;
  message: string;
  /** What was being done: `observe`, `increase`, `remove`, `configure`, `heartbeat`, ... */
  during: string;
}

export class ProviderErrors {
  private readonly last = new Map<string, ProviderErrorStatus>();

  constructor(
    private readonly metrics: DaemonMetrics,
    private readonly time: Time,
  ) {}

  record(fleet: string, during: string, error: unknown): void {
    const e = asError(error);
    const code = isFleetError(e) ? e.code : 'PROVIDER';
    const at = this.time.now();
    this.last.set(fleet, { at: at.toISOString(), code, message: e.message.slice(0, 500), during });
    this.metrics.providerError(fleet, code, at);
  }

  lastFor(fleet: string): ProviderErrorStatus | undefined {
    return this.last.get(fleet);
  }
}
