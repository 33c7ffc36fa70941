/**
 * What every part of the AWS provider shares: the clients, the retrying `callAws`, the time and
 * the manager id. Built once by `createAwsProvider`.
 */
import type { Time } from '../../util/time.js';
import type { ProviderInstanceState } from '../../model/observed.js';
import type { AwsClients } from './clients.js';
import type { AwsService } from './errors.js';
import { withAwsRetry, type RetryCallOptions, type RetryDeps } from './retry.js';

export interface AwsContext {
  clients: AwsClients;
  retry: RetryDeps;
  time: Time;
  /** This manager's id, tagged on groups as `runfleet:manager`; unset means untagged. */
  manager: string | undefined;
  /** How long a DescribePolicies answer is reused by `observe`. */
  policyCacheMs: number;
  /** Mutable caches owned by the provider instance (never connection details). */
  cache: {
    policies?: { at: number; byGroup: Map<string, string[]> };
    /** Last state `observe` saw per instance id, for cheap heartbeats. */
    seen: Map<string, { state: ProviderInstanceState; healthy: boolean; at: number }>;
  };
}

/** The SDK's output type of a command instance, read off its middleware handler. */
export type OutputOf<C> = C extends {
  resolveMiddleware: (...a: never[]) => (...b: never[]) => Promise<{ output: infer O }>;
}
  ? O
  : never;

interface SendableClient {
  send(command: unknown, options?: { abortSignal?: AbortSignal }): Promise<unknown>;
}

/**
 * Sends one command through the retry layer. The IAM action named in errors is the command's
 * class name without `Command` (e.g. `SetDesiredCapacity`).
 */
export async function callAws<C extends { input: object }>(
  ctx: AwsContext,
  service: AwsService,
  command: C,
  opts: RetryCallOptions = {},
): Promise<OutputOf<C>> {
  const client: SendableClient =
    service === 'autoscaling'
      ? (ctx.clients.autoscaling as unknown as SendableClient)
      : service === 'ec2'
        ? (ctx.clients.ec2 as unknown as SendableClient)
        : (ctx.clients.instanceConnect as unknown as SendableClient);
  const action = command.constructor.name.replace(/Command$/, '');
  const sendOpts = opts.signal ? { abortSignal: opts.signal } : undefined;
  return withAwsRetry(
    { service, action },
    () => client.send(command, sendOpts) as Promise<OutputOf<C>>,
    ctx.retry,
    opts,
  );
}

/** Splits a list into chunks of at most `size` (AWS caps names/values per request). */
export function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
