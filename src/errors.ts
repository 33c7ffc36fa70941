/**
 * runfleet's one error type. Every error that reaches the CLI carries a stable code, a hint a human
 * can act on, and whether retrying the same operation may succeed. Library code throws these; only
 * `cli/main.ts` turns them into exit codes and text.
 */
export const ErrorCode = {
  /** A fleet file does not parse or validate. */
  CONFIG_INVALID: 'CONFIG_INVALID',
  /** A CLI flag or argument is wrong. */
  USAGE: 'USAGE',
  /** The state store cannot be opened, migrated or written. */
  STATE: 'STATE',
  /** Another process holds the state lock. */
  LOCKED: 'LOCKED',
  /** A fleet's lease is not (or no longer) this manager's: the write or provider call was refused. */
  FENCED: 'FENCED',
  /** A saved plan no longer matches the observed state. */
  PLAN_STALE: 'PLAN_STALE',
  /** A saved plan file cannot be read or has the wrong format. */
  PLAN_INVALID: 'PLAN_INVALID',
  /** The operator declined, or confirmation was impossible. */
  APPLY_ABORTED: 'APPLY_ABORTED',
  /** Some steps of an apply failed. */
  /** A provider call failed. */
  PROVIDER: 'PROVIDER',
  /** A provider was throttled by its API. */
  PROVIDER_THROTTLED: 'PROVIDER_THROTTLED',
  /** Credentials or permissions are missing for a provider call. */
  PROVIDER_AUTH: 'PROVIDER_AUTH',
  /** A GitLab API call failed (network, unexpected reply); usually worth retrying. */
  GITLAB: 'GITLAB',
  /** GitLab rejected the runner authentication token (403/422): fix the token, retrying will not help. */
  GITLAB_AUTH: 'GITLAB_AUTH',
  /** An instance cannot be reached over SSH, or the connection to it was lost mid-job. */
  SSH_CONNECT: 'SSH_CONNECT',
  /** An instance presented a host key other than the one pinned on first contact. */
  SSH_HOSTKEY: 'SSH_HOSTKEY',
  /** Moving files between an instance and the manager failed (listing, archiving, extracting). */
  TRANSFER: 'TRANSFER',
  /** A job could not run as asked (e.g. its image cannot be pulled); carries a GitLab failure reason. */
  JOB_FAILED: 'JOB_FAILED',
  /** A bug in runfleet. */
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface FleetErrorOptions {
  hint?: string;
  retryable?: boolean;
  cause?: unknown;
}

export class FleetError extends Error {
  readonly hint: string | undefined;
  readonly retryable: boolean;

  constructor(
    readonly code: ErrorCode,
    message: string,
    opts: FleetErrorOptions = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'FleetError';
    this.hint = opts.hint;
    this.retryable = opts.retryable ?? false;
  }
}

export function isFleetError(e: unknown): e is FleetError {
  return e instanceof Error && e.name === 'FleetError' && typeof (e as FleetError).code === 'string';
}

/** Narrows an unknown thrown value to an Error without losing non-Error throws. */
export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
