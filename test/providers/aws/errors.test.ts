import t from 'tap';
import { ErrorCode, FleetError } from '../../../src/errors.js';
import {
  awsErrorCode,
  classifyAwsError,
  isNotFound,
  redact,
  toFleetError,
} from '../../../src/providers/aws/errors.js';
import { withAwsRetry } from '../../../src/providers/aws/retry.js';
import { autoScalingFault, awsError } from './fixtures/aws.js';

const ctx = { service: 'autoscaling' as const, action: 'SetDesiredCapacity' };

t.test('classifies throttling, transient, auth and other errors', async (t) => {
  t.equal(classifyAwsError(awsError('RequestLimitExceeded', 'Request limit exceeded.')), 'throttled');
  t.equal(classifyAwsError(awsError('Throttling', 'Rate exceeded')), 'throttled');
  t.equal(classifyAwsError(awsError('ThrottlingException', 'slow down')), 'throttled');
  t.equal(classifyAwsError(awsError('SomethingNew', 'Rate exceeded')), 'throttled');
  t.equal(classifyAwsError(awsError('InternalError', 'x', 500)), 'transient');
  t.equal(classifyAwsError(awsError('Weird', 'x', 503)), 'transient');
  t.equal(classifyAwsError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })), 'transient');
  t.equal(classifyAwsError(awsError('UnauthorizedOperation', 'no')), 'auth');
  t.equal(classifyAwsError(awsError('ExpiredToken', 'no')), 'credentials');
  t.equal(classifyAwsError(awsError('ValidationError', 'bad')), 'other');
  t.equal(classifyAwsError(Object.assign(new Error('aborted'), { name: 'AbortError' })), 'aborted');
  t.ok(isNotFound(awsError('InvalidInstanceID.NotFound', 'x')));
  t.ok(isNotFound(awsError('ValidationError', 'AutoScalingGroup name not found - x')));
  t.notOk(isNotFound(awsError('ValidationError', 'MaxSize must be >= MinSize')));
});

t.test("modeled Auto Scaling faults are known by AWS's code, not the SDK's shape name", async (t) => {
  const exists = autoScalingFault('AlreadyExists', 'AutoScalingGroup by this name already exists');
  t.equal(awsErrorCode(exists), 'AlreadyExists');
  t.equal(classifyAwsError(exists), 'other');
  t.match(toFleetError(exists, { service: 'autoscaling', action: 'CreateAutoScalingGroup' }), {
    message: /\(AlreadyExists\)/,
    hint: /adopt it with auto_scaling_group/,
  });
  for (const code of ['ResourceInUse', 'ResourceContention', 'ScalingActivityInProgress'])
    t.equal(classifyAwsError(autoScalingFault(code, 'busy')), 'transient', code);
  t.match(
    toFleetError(autoScalingFault('LimitExceeded', 'too many groups'), {
      service: 'autoscaling',
      action: 'CreateAutoScalingGroup',
    }),
    { hint: /quota/ },
  );
});

t.test('access denied names the missing IAM action', async (t) => {
  const e = toFleetError(
    awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.'),
    {
      service: 'ec2',
      action: 'DescribeInstances',
    },
  );
  t.equal(e.code, ErrorCode.PROVIDER_AUTH);
  t.equal(e.retryable, false);
  t.match(e.hint, /grant ec2:DescribeInstances/);
});

t.test('messages never carry credentials', async (t) => {
  const msg =
    'The request signature we calculated does not match. Credential=AKIAIOSFODNN7EXAMPLE/20260301/eu-west-1 ' +
    'key ASIAABCDEFGHIJKLMNOP Encoded authorization failure message: AbCdEf123456';
  const cleaned = redact(msg);
  t.notMatch(cleaned, /AKIAIOSFODNN7EXAMPLE|ASIAABCDEFGHIJKLMNOP|AbCdEf123456/);
  const e = toFleetError(awsError('ValidationError', msg), ctx);
  t.notMatch(e.message, /AKIAIOSFODNN7EXAMPLE/);
  const cred = toFleetError(awsError('SignatureDoesNotMatch', msg), ctx);
  t.equal(cred.code, ErrorCode.PROVIDER_AUTH);
  t.notMatch(cred.message, /AKIA/);
});

t.test('a FleetError passes through untouched', async (t) => {
  const original = new FleetError(ErrorCode.PROVIDER, 'x');
  t.equal(toFleetError(original, ctx), original);
});

t.test('withAwsRetry: non-retryable errors fail at once; retryable ones are bounded', async (t) => {
  const sleeps: number[] = [];
  const deps = {
    policy: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 1000 },
    sleep: async (ms: number) => {
      sleeps.push(ms);
    },
    random: () => 0.999,
  };
  let calls = 0;
  await t.rejects(
    withAwsRetry(
      ctx,
      async () => {
        calls++;
        throw awsError('ValidationError', 'bad input');
      },
      deps,
    ),
    { code: ErrorCode.PROVIDER, retryable: false },
  );
  t.equal(calls, 1);
  t.same(sleeps, []);

  calls = 0;
  await t.rejects(
    withAwsRetry(
      ctx,
      async () => {
        calls++;
        throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      },
      deps,
    ),
    { code: ErrorCode.PROVIDER, retryable: true, message: /after 3 attempts/ },
  );
  t.equal(calls, 3);
  t.same(sleeps, [99, 199]);

  calls = 0;
  await t.rejects(
    withAwsRetry(
      ctx,
      async () => {
        calls++;
        throw awsError('InternalError', 'x', 500);
      },
      deps,
      { retryAmbiguous: false },
    ),
    { retryable: true, message: /InternalError/ },
  );
  t.equal(calls, 1, 'an ambiguous failure is not retried when the call asks so');
});

t.test('withAwsRetry stops when the signal aborts', async (t) => {
  const controller = new AbortController();
  let calls = 0;
  const deps = {
    policy: { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1000 },
    sleep: async () => {
      controller.abort();
    },
    random: () => 0.5,
  };
  const thrown = await withAwsRetry(
    ctx,
    async () => {
      calls++;
      throw awsError('Throttling', 'Rate exceeded');
    },
    deps,
    { signal: controller.signal },
  ).catch((e: unknown) => e);
  t.equal(calls, 2);
  t.match(thrown, { name: 'Throttling' }, 'the abort ends the loop with the last error');
});
