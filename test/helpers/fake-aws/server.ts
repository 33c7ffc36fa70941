/**
 * An AWS-compatible HTTP endpoint on 127.0.0.1 for end-to-end tests: Auto Scaling, EC2 and EC2
 * Instance Connect on one port, so a fleet's `provider.endpoint` (or AWS_ENDPOINT_URL) can point
 * every SDK client at it. Requests are routed by protocol (x-amz-target for JSON, the form's
 * `Version` for the query protocols) and must carry a SigV4 Authorization header scoped to the
 * right service; the signature itself is not checked. Every call is recorded (service, action,
 * access key, region, answer), and faults can be queued: throttle or fail the next N calls.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AUTOSCALING_ACTIONS } from './autoscaling.js';
import { EC2_ACTIONS, sendSshPublicKey } from './ec2.js';
import { AwsFault, QueryParams, asgError, asgResponse, ec2Error, ec2Response } from './wire.js';
import {
  groupView,
  launchNow,
  seedGroup,
  setPolicies,
  settle,
  type GroupView,
  type SeedGroupSpec,
} from './seed.js';
import { World, type WorldOptions } from './world.js';

export type AwsServiceName = 'autoscaling' | 'ec2' | 'ec2-instance-connect';

export interface FakeAwsCall {
  service: AwsServiceName;
  action: string;
  accessKeyId: string;
  region: string;
  status: number;
  /** The error code answered, if any. */
  error?: string;
  at: number;
}

export interface FaultMatch {
  service?: AwsServiceName;
  action?: string;
}

interface FaultRule extends FaultMatch {
  kind: 'throttle' | 'server-error' | 'server-error-after-effect';
  remaining: number;
}

const THROTTLE: Record<AwsServiceName, AwsFault> = {
  autoscaling: new AwsFault('Throttling', 'Rate exceeded', 400),
  // EC2 answers throttling with 503.
  ec2: new AwsFault('RequestLimitExceeded', 'Request limit exceeded.', 503),
  'ec2-instance-connect': new AwsFault('ThrottlingException', 'Rate exceeded', 400),
};

const SERVER_ERROR: Record<AwsServiceName, AwsFault> = {
  autoscaling: new AwsFault('InternalFailure', 'An internal error occurred.', 500),
  ec2: new AwsFault('InternalError', 'An internal error has occurred', 500),
  'ec2-instance-connect': new AwsFault('ServiceException', 'An internal error occurred.', 500),
};

const SIGV4 =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=[^,]+, Signature=[0-9a-f]{64}$/;

export interface FakeAwsOptions extends WorldOptions {
  /** The Region the endpoint serves; requests signed for another are refused. @default eu-west-1 */
  region?: string;
}

export class FakeAws {
  readonly world: World;
  readonly calls: FakeAwsCall[] = [];
  /** Requests refused for a missing or malformed Authorization header. */
  readonly unsigned: { url: string; authorization: string | undefined }[] = [];
  /** Exceptions inside the fake itself (bugs of the fake, not AWS errors); tests assert none. */
  readonly internalErrors: Error[] = [];
  private readonly faults: FaultRule[] = [];
  private readonly holds: { match: FaultMatch; gate: Promise<void>; arrived: () => void }[] = [];
  private readonly server = createServer((req, res) => void this.handle(req, res));
  url = '';

  constructor(opts: FakeAwsOptions = {}) {
    this.world = new World(opts.region ?? 'eu-west-1', opts);
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Answers the next `n` matching calls with the service's throttling error. */
  throttle(n: number, match: FaultMatch = {}): void {
    this.faults.push({ ...match, kind: 'throttle', remaining: n });
  }

  /**
   * Answers the next `n` matching calls with the service's HTTP 500 error. With `afterEffect` the
   * call takes effect first, as a request can that times out or fails on its way back.
   */
  failWithServerError(n: number, match: FaultMatch = {}, opts: { afterEffect?: boolean } = {}): void {
    this.faults.push({
      ...match,
      kind: opts.afterEffect ? 'server-error-after-effect' : 'server-error',
      remaining: n,
    });
  }

  /**
   * Holds every matching call, before it takes effect, until `release()`: an AWS that is slow to
   * answer, so a test can look at the caller while the call is in flight instead of racing it.
   * `arrived` resolves once the first matching call is being held.
   */
  hold(match: FaultMatch): { arrived: Promise<void>; release: () => void } {
    let release!: () => void;
    let arrived!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const arrival = new Promise<void>((r) => (arrived = r));
    const entry = { match, gate, arrived };
    this.holds.push(entry);
    return {
      arrived: arrival,
      release: () => {
        this.holds.splice(this.holds.indexOf(entry), 1);
        release();
      },
    };
  }

  /** A group as plain data (brought up to now), or undefined when it does not exist. */
  group(name: string): GroupView | undefined {
    return groupView(this.world, name);
  }

  /** Pre-creates a group as an operator would (e.g. one a fleet adopts). */
  seedGroup(spec: SeedGroupSpec): void {
    seedGroup(this.world, spec);
  }

  /** Replaces the scaling policies DescribePolicies lists for `group`. */
  setPolicies(group: string, names: string[]): void {
    setPolicies(this.world, group, names);
  }

  /** Launches instances the groups ask for now (ignoring `launchDelayMs`); they stay Pending. */
  launchNow(): void {
    launchNow(this.world);
  }

  /** Completes every pending launch and transition at once. */
  settle(): void {
    settle(this.world);
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Calls per action (every answer, faults included), optionally since index `from` of `calls`. */
  countByAction(from = 0): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of this.calls.slice(from)) out[c.action] = (out[c.action] ?? 0) + 1;
    return out;
  }

  count(action: string, from = 0): number {
    return this.calls.slice(from).filter((c) => c.action === action).length;
  }

  private takeFault(service: AwsServiceName, action: string): FaultRule | undefined {
    const rule = this.faults.find((f) => f.remaining > 0 && matches(f, service, action));
    if (!rule) return undefined;
    rule.remaining--;
    return rule;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const requestId = randomUUID();
    const target = req.headers['x-amz-target'];
    const json = typeof target === 'string';
    const form = json ? undefined : new URLSearchParams(body);
    const version = form?.get('Version');
    const service: AwsServiceName = json
      ? 'ec2-instance-connect'
      : version === '2016-11-15'
        ? 'ec2'
        : 'autoscaling';
    const action = json ? target.replace(/^AWSEC2InstanceConnectService\./, '') : (form?.get('Action') ?? '');

    const reply = (status: number, payload: string, error?: string) => {
      res.writeHead(status, {
        'content-type': json ? 'application/x-amz-json-1.1' : 'text/xml',
        'x-amzn-requestid': requestId,
        ...(json && error ? { 'x-amzn-errortype': error } : {}),
      });
      res.end(payload);
    };
    const fail = (fault: AwsFault, record = true) => {
      const payload = json
        ? JSON.stringify({ __type: fault.code, message: fault.message })
        : service === 'ec2'
          ? ec2Error(fault, requestId)
          : asgError(fault, requestId);
      if (record) this.record(service, action, req, fault.status, fault.code);
      reply(fault.status, payload, fault.code);
    };

    const auth = SIGV4.exec(req.headers.authorization ?? '');
    if (!auth) {
      this.unsigned.push({ url: req.url ?? '', authorization: req.headers.authorization });
      return fail(
        new AwsFault('MissingAuthenticationToken', 'Request is missing Authentication Token', 403),
        false,
      );
    }
    if (auth[3] !== service) {
      return fail(
        new AwsFault(
          'SignatureDoesNotMatch',
          `Credential should be scoped to correct service: '${service}'.`,
          403,
        ),
      );
    }
    if (auth[2] !== this.world.region) {
      return fail(
        new AwsFault(
          'SignatureDoesNotMatch',
          `Credential should be scoped to a valid region, not '${auth[2]}'.`,
          403,
        ),
      );
    }
    const hold = this.holds.find((h) => matches(h.match, service, action));
    if (hold) {
      hold.arrived();
      await hold.gate;
    }
    const fault = this.takeFault(service, action);
    if (fault?.kind === 'throttle') return fail(THROTTLE[service]);
    if (fault?.kind === 'server-error') return fail(SERVER_ERROR[service]);

    try {
      const answer = this.dispatch(service, action, json ? body : form!, requestId);
      if (fault) return fail(SERVER_ERROR[service]);
      this.record(service, action, req, 200);
      return reply(200, answer);
    } catch (e) {
      if (e instanceof AwsFault) return fail(e);
      this.internalErrors.push(e as Error);
      return fail(new AwsFault('InternalFailure', `fake-aws bug: ${(e as Error).message}`, 500));
    }
  }

  /** Runs one action against the world and returns the success payload; throws `AwsFault`s. */
  private dispatch(
    service: AwsServiceName,
    action: string,
    input: string | URLSearchParams,
    requestId: string,
  ): string {
    this.world.advance();
    if (typeof input === 'string') {
      if (action !== 'SendSSHPublicKey')
        throw new AwsFault('UnknownOperationException', `Unknown operation ${action}`);
      return JSON.stringify(
        sendSshPublicKey(this.world, JSON.parse(input || '{}') as Record<string, unknown>, requestId),
      );
    }
    const params = new QueryParams(input);
    if (service === 'ec2') {
      const handler = EC2_ACTIONS[action];
      if (!handler)
        throw new AwsFault('InvalidAction', `The action ${action} is not valid for this web service.`);
      return ec2Response(action, requestId, handler(this.world, params));
    }
    const version = input.get('Version');
    const handler = AUTOSCALING_ACTIONS[action];
    if (!handler || version !== '2011-01-01') {
      throw new AwsFault('InvalidAction', `Could not find operation ${action} for version ${version}`);
    }
    return asgResponse(action, requestId, handler(this.world, params));
  }

  private record(
    service: AwsServiceName,
    action: string,
    req: IncomingMessage,
    status: number,
    error?: string,
  ) {
    const auth = SIGV4.exec(req.headers.authorization ?? '');
    this.calls.push({
      service,
      action,
      accessKeyId: auth?.[1] ?? '',
      region: auth?.[2] ?? '',
      status,
      ...(error ? { error } : {}),
      at: Date.now(),
    });
  }
}

function matches(m: FaultMatch, service: AwsServiceName, action: string): boolean {
  return (
    (m.service === undefined || m.service === service) && (m.action === undefined || m.action === action)
  );
}

/** Starts a fake endpoint on an ephemeral loopback port. */
export async function startFakeAws(opts: FakeAwsOptions = {}): Promise<FakeAws> {
  return new FakeAws(opts).listen();
}
