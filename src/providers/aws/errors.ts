/**
 * The one place AWS SDK errors become runfleet's `FleetError`s. Everything else in the AWS provider
 * throws what `toFleetError` returns, so codes, hints and retryability are decided here only.
 *
 * Messages never carry credentials: AWS's own messages are passed through `redact`, which removes
 * access key ids, signatures and encoded authorization blobs.
 */
import { ErrorCode, FleetError, isFleetError } from '../../errors.js';

/** IAM service prefixes of the three clients runfleet uses. */
export type AwsService = 'autoscaling' | 'ec2' | 'ec2-instance-connect';

/** The call that failed: which service and which API action (e.g. `SetDesiredCapacity`). */
export interface AwsCallContext {
  service: AwsService;
  action: string;
}

/** How the retry layer should treat an error. */
export type AwsErrorKind =
  'throttled' | 'transient' | 'auth' | 'credentials' | 'not_found' | 'aborted' | 'other';

const THROTTLE_CODES = new Set([
  'RequestLimitExceeded',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'EC2ThrottledException',
]);

const ACCESS_DENIED_CODES = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'UnauthorizedOperation',
  'UnauthorizedAccess',
  'NotAuthorizedException',
]);

const BAD_CREDENTIAL_CODES = new Set([
  'AuthFailure',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'IncompleteSignature',
  'ExpiredToken',
  'ExpiredTokenException',
  'RequestExpired',
  'CredentialsProviderError',
  'TokenProviderError',
]);

/** Auto Scaling answers "busy, try again" with these; retrying the same call is the fix. */
const TRANSIENT_CODES = new Set([
  'ResourceContention',
  'ScalingActivityInProgress',
  'ResourceInUse',
  'ServiceUnavailable',
  'Unavailable',
  'InternalError',
  'InternalFailure',
  'InternalServerError',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
]);

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
]);

interface SdkErrorShape {
  name?: string;
  /** The error code AWS sent, as the API reference lists it (query protocols only). */
  Code?: unknown;
  code?: string;
  message?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number; requestId?: string };
  $retryable?: { throttling?: boolean };
}

function shapeOf(e: unknown): SdkErrorShape {
  return e !== null && typeof e === 'object' ? (e as SdkErrorShape) : { message: String(e) };
}

/** The SDK error behind a translated `FleetError`, or the error itself. */
function unwrap(e: unknown): unknown {
  return isFleetError(e) && e.cause !== undefined ? e.cause : e;
}

/**
 * The AWS error code, as the API reference lists it. Auto Scaling (awsQuery) sends it in the
 * body's `<Code>`, which the SDK v3 keeps as `Code` while naming a modeled error after its shape
 * (`AlreadyExists` arrives as an `AlreadyExistsFault`, `ResourceInUse` as `ResourceInUseFault`);
 * unmodeled errors (EC2's, throttling) and JSON-protocol errors carry the code in `name`; node
 * network errors in `code`. Looks through a `FleetError` made by `toFleetError` to the SDK error
 * it wraps.
 */
export function awsErrorCode(e: unknown): string {
  const s = shapeOf(unwrap(e));
  if (typeof s.Code === 'string' && s.Code !== '') return s.Code;
  if (s.name && s.name !== 'Error') return s.name;
  return s.code ?? 'Error';
}

/** Sorts an SDK error for the retry layer. */
export function classifyAwsError(e: unknown): AwsErrorKind {
  const s = shapeOf(e);
  const code = awsErrorCode(e);
  const message = s.message ?? '';
  if (code === 'AbortError') return 'aborted';
  if (THROTTLE_CODES.has(code) || s.$retryable?.throttling || /rate exceeded/i.test(message))
    return 'throttled';
  if (s.$metadata?.httpStatusCode === 429) return 'throttled';
  if (ACCESS_DENIED_CODES.has(code)) return 'auth';
  if (BAD_CREDENTIAL_CODES.has(code)) return 'credentials';
  if (TRANSIENT_CODES.has(code) || NETWORK_CODES.has(s.code ?? '') || NETWORK_CODES.has(code))
    return 'transient';
  if (s.$fault === 'server' || (s.$metadata?.httpStatusCode ?? 0) >= 500) return 'transient';
  if (isNotFound(e)) return 'not_found';
  return 'other';
}

/**
 * True for "this thing does not exist" answers: EC2's `InvalidInstanceID.NotFound` and Auto
 * Scaling's `ValidationError` with "not found" / "not part of" wording (Auto Scaling has no
 * dedicated code for a missing group or instance).
 */
export function isNotFound(e: unknown): boolean {
  const code = awsErrorCode(e);
  if (code.endsWith('.NotFound') || code === 'NotFoundException' || code === 'ResourceNotFoundException')
    return true;
  if (code !== 'ValidationError') return false;
  return /not found|not part of|does not exist|no active auto ?scaling group/i.test(
    shapeOf(unwrap(e)).message ?? '',
  );
}

/** Removes credential-shaped substrings from an AWS message before it reaches logs or users. */
export function redact(message: string): string {
  return message
    .replace(/\b(AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b/g, '[redacted-key-id]')
    .replace(/(Credential|Signature|X-Amz-Security-Token|SessionToken)=[^\s,&]+/gi, '$1=[redacted]')
    .replace(
      /Encoded authorization failure message:\s*\S+/i,
      'Encoded authorization failure message: [omitted]',
    )
    .slice(0, 500);
}

const CREDENTIALS_HINT =
  "check the AWS credential chain: AWS_PROFILE or the fleet's provider.profile, AWS_ACCESS_KEY_ID/" +
  'AWS_SECRET_ACCESS_KEY, SSO login, or the instance role; and that the time is in sync';

/**
 * Translates any error thrown by an AWS call into a `FleetError`. A `FleetError` passes through;
 * an abort is rethrown unchanged by the caller (see `classifyAwsError`).
 */
export function toFleetError(e: unknown, ctx: AwsCallContext, attempts = 1): FleetError {
  if (isFleetError(e)) return e;
  const code = awsErrorCode(e);
  const detail = redact(shapeOf(e).message ?? code);
  const what = `${ctx.service}:${ctx.action}`;
  const tries = attempts > 1 ? ` after ${attempts} attempts` : '';
  switch (classifyAwsError(e)) {
    case 'throttled':
      return new FleetError(
        ErrorCode.PROVIDER_THROTTLED,
        `AWS throttled ${what}${tries} (${code}): ${detail}`,
        {
          hint:
            'runfleet backs off and retries on the next cycle; if this persists, lower the observe rate, ' +
            'reduce other callers of the account/Region, or ask AWS Support for a higher API rate',
          retryable: true,
          cause: e,
        },
      );
    case 'transient':
      return new FleetError(ErrorCode.PROVIDER, `AWS ${what} failed${tries} (${code}): ${detail}`, {
        hint: 'a transient AWS or network failure; retrying the same operation is safe',
        retryable: true,
        cause: e,
      });
    case 'auth':
      return new FleetError(ErrorCode.PROVIDER_AUTH, `AWS denied ${what} (${code}): ${detail}`, {
        hint: `grant ${what} to runfleet's IAM role or user (see the README's IAM policy)`,
        cause: e,
      });
    case 'credentials':
      return new FleetError(ErrorCode.PROVIDER_AUTH, `AWS rejected the credentials for ${what} (${code})`, {
        hint: CREDENTIALS_HINT,
        cause: e,
      });
    case 'aborted':
      return new FleetError(ErrorCode.PROVIDER, `AWS ${what} was aborted`, { retryable: true, cause: e });
    case 'not_found':
    case 'other':
      return new FleetError(ErrorCode.PROVIDER, `AWS ${what} failed (${code}): ${detail}`, {
        hint: hintFor(code),
        cause: e,
      });
  }
}

function hintFor(code: string): string | undefined {
  if (code === 'LimitExceeded' || code.endsWith('LimitExceeded') || code === 'InsufficientInstanceCapacity') {
    return 'an AWS quota or capacity limit was reached: check Service Quotas for Auto Scaling groups and vCPUs';
  }
  if (code === 'AlreadyExists')
    return 'a group of that name exists; adopt it with auto_scaling_group instead';
  if (code.startsWith('InvalidLaunchTemplate')) return 'check create.launch_template id/name and version';
  if (code.startsWith('InvalidSubnet')) return "check create.subnets: they must exist in the fleet's region";
  if (code === 'ValidationError') return 'AWS rejected the request; the message says which parameter';
  return undefined;
}
