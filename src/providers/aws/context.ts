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

function clientOf(ctx: AwsContext, service: AwsService): SendableClient {
  const c =
    service === 'autoscaling'
      ? ctx.clients.autoscaling
      : service === 'ec2'
        ? ctx.clients.ec2
        : ctx.clients.instanceConnect;
  return c as unknown as SendableClient;
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
  const client = clientOf(ctx, service);
  const action = command.constructor.name.replace(/Command$/, '');
  const sendOpts = opts.signal ? { abortSignal: opts.signal } : undefined;
  return withAwsRetry(
    { service, action },
    () => client.send(command, sendOpts) as Promise<OutputOf<C>>,
    ctx.retry,
    opts,
  );
}

/**
 * The client of `service` as the SDK's paginators (`paginateDescribeInstances`, ...) want it, with
 * every page sent through `callAws`: same retries, same error mapping, same abort signal. The
 * paginators check `instanceof` the SDK client, so this is a view whose prototype is the client.
 */
export function pagingClient<T extends object>(ctx: AwsContext, service: AwsService): T {
  const view = Object.create(clientOf(ctx, service) as object) as SendableClient;
  view.send = (command, options) => {
    // The paginators reuse one input object and set the next page's token on it; each page gets a
    // command of its own, so what was sent (and what a retry resends) never changes afterwards.
    const { constructor: Ctor, input } = command as { constructor: new (i: object) => object; input: object };
    return callAws(ctx, service, new Ctor({ ...input }) as { input: object }, {
      signal: options?.abortSignal,
    });
  };
  return view as unknown as T;
}

/** Every page of a paginator, flattened through `items`. */
export async function allPages<P, I>(
  pages: AsyncIterable<P>,
  items: (page: P) => I[] | undefined,
): Promise<I[]> {
  const out: I[] = [];
  // `?.`: a mocked client answers commands a test did not set up with undefined.
  for await (const page of pages) out.push(...((page as P | undefined) ? (items(page) ?? []) : []));
  return out;
}

/** Splits a list into chunks of at most `size` (AWS caps names/values per request). */
export function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
