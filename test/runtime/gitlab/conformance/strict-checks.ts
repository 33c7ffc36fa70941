/**
 * Body checks of the strict fake GitLab: the `info` object (§1) and `PUT /jobs/:id` (§3). Each
 * check reports through `report` and never throws, so one request can show several faults.
 */
import { parseGoBool } from '../../../../src/runtime/script/build-settings.js';
import { crc32 } from 'node:zlib';
import type { FakeJob, SeenRequest } from './strict-gitlab.js';

export const MIB = 1024 * 1024;

export type Violations = (seq: number, msg: string) => void;

export function header(r: SeenRequest, name: string): string | undefined {
  const v = r.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Flags runfleet actually implements (runner-info.ts, checked against the code paths): the
 * network-level trace_* / cancel flags, variables and masking, refspecs in get_sources, exit codes
 * in the final PUT, `image` for the Docker executor only, and the artifact flags (uploads, reports,
 * raw files, exclude: test/runtime/integration/artifact-jobs.test.ts), caches, and services for the
 * Docker executor. Anything else set to true is a claim
 * GitLab would route unsupported jobs by (§1 "Job matching").
 */
const HONEST_FEATURES = new Set([
  'variables',
  'raw_variables',
  'masking',
  'refspecs',
  'return_exit_code',
  'trace_reset',
  'trace_checksum',
  'trace_size',
  'cancelable',
  'cancel_gracefully',
  'image',
  'artifacts',
  'upload_multiple_artifacts',
  'upload_raw_artifacts',
  'artifacts_exclude',
  // restore_cache / archive_cache with fallback keys (test/runtime/integration/caches.test.ts).
  'cache',
  'fallback_cache_keys',
  // The docker executor's services and executor options (test/runtime/integration/docker-jobs.test.ts).
  'services',
  'service_variables',
  'service_multiple_aliases',
  'image_executor_opts',
  'service_executor_opts',
  // Informational (the instance executor's jobs share the host: CI_SHARED_ENVIRONMENT).
  'shared',
]);

/** GitLab Runner sends every key of its FeaturesInfo, false ones too (`R:common/network.go`). */
export const GITLAB_RUNNER_FEATURE_KEYS: readonly string[] = [
  'variables',
  'image',
  'services',
  'artifacts',
  'cache',
  'fallback_cache_keys',
  'shared',
  'upload_multiple_artifacts',
  'upload_raw_artifacts',
  'session',
  'terminal',
  'refspecs',
  'masking',
  'proxy',
  'raw_variables',
  'artifacts_exclude',
  'multi_build_steps',
  'trace_reset',
  'trace_checksum',
  'trace_size',
  'vault_secrets',
  'cancelable',
  'return_exit_code',
  'service_variables',
  'service_multiple_aliases',
  'image_executor_opts',
  'service_executor_opts',
  'cancel_gracefully',
  'native_steps_integration',
  'two_phase_job_commit',
  'job_inputs',
];

const INFO_STRINGS = ['name', 'version', 'revision', 'platform', 'architecture', 'executor', 'shell'];
const INFO_KEYS = new Set([...INFO_STRINGS, 'features', 'config', 'labels']);

export function checkInfo(info: unknown, report: (msg: string) => void): void {
  if (!info || typeof info !== 'object' || Array.isArray(info)) return report('info is not an object');
  const o = info as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!INFO_KEYS.has(k)) report(`info: unknown key ${k}`);
  for (const k of INFO_STRINGS) {
    if (typeof o[k] !== 'string' || o[k] === '') report(`info.${k} ${JSON.stringify(o[k])}`);
  }
  const features = o['features'];
  if (!features || typeof features !== 'object') return report('info.features missing');
  for (const k of GITLAB_RUNNER_FEATURE_KEYS) {
    if (!(k in (features as Record<string, unknown>))) report(`info.features.${k} missing`);
  }
  for (const [k, v] of Object.entries(features as Record<string, unknown>)) {
    if (typeof v !== 'boolean') report(`info.features.${k} is not a boolean`);
    if (v === true && !HONEST_FEATURES.has(k)) report(`info.features.${k} claimed but not implemented`);
  }
  const f = features as Record<string, unknown>;
  for (const k of ['image', 'services', 'service_variables', 'image_executor_opts']) {
    if (f[k] === true && !String(o['executor']).startsWith('docker'))
      report(`info.features.${k} with executor ${String(o['executor'])}`);
  }
  if (f['cancel_gracefully'] === true && f['cancelable'] !== true)
    report('cancel_gracefully without cancelable');
  const config = o['config'] as { gpus?: unknown } | undefined;
  if (!config || typeof config !== 'object' || typeof config.gpus !== 'string') report('info.config.gpus');
  if (o['labels'] !== undefined) {
    const labels = o['labels'];
    if (!labels || typeof labels !== 'object' || Object.values(labels).some((l) => typeof l !== 'string'))
      report('info.labels is not a string map');
  }
}

const UPDATE_KEYS = new Set(['info', 'token', 'state', 'failure_reason', 'checksum', 'output', 'exit_code']);
/** Sent as they are whatever the server lists; unknown_failure is the mapper's fallback (§3). */
const ALWAYS_REASONS = [
  'script_failure',
  'runner_system_failure',
  'job_execution_timeout',
  'unknown_failure',
];

/** `PUT /jobs/:id` body (§3) for a request whose `kind` is already set. */
export function checkJobUpdateBody(
  r: SeenRequest,
  body: Record<string, unknown>,
  job: FakeJob,
  report: (msg: string) => void,
): void {
  for (const k of Object.keys(body)) if (!UPDATE_KEYS.has(k)) report(`unknown key ${k}`);
  if (body['token'] !== job.payload.token) report('body token is not the job token');
  checkInfo(body['info'], report);
  const state = body['state'];
  if (state !== 'running' && state !== 'success' && state !== 'failed')
    report(`state ${JSON.stringify(state)}`);
  if (r.kind === 'start' && state !== 'running') report(`the first PUT has state ${String(state)}`);

  const output = body['output'] as { checksum?: unknown; bytesize?: unknown } | undefined;
  if (r.kind === 'start') {
    if (output !== undefined || body['checksum'] !== undefined) report('the start PUT carries output');
  } else if (
    !output ||
    typeof output.checksum !== 'string' ||
    !/^crc32:[0-9a-f]{8}$/.test(output.checksum) ||
    typeof output.bytesize !== 'number' ||
    !Number.isInteger(output.bytesize) ||
    output.bytesize < 0
  ) {
    report(`${r.kind} PUT output ${JSON.stringify(output)}`);
  }
  if (body['checksum'] !== undefined && body['checksum'] !== output?.checksum)
    report('top-level checksum differs from output.checksum');

  const reason = body['failure_reason'];
  if (state === 'failed') {
    const features = job.payload['features'] as { failure_reasons?: string[] } | undefined;
    const allowed = [...ALWAYS_REASONS, ...(features?.failure_reasons ?? [])];
    if (typeof reason !== 'string' || !allowed.includes(reason))
      report(`failure_reason ${JSON.stringify(reason)} not accepted by this GitLab`);
  } else if (reason !== undefined) {
    report(`failure_reason with state ${String(state)}`);
  }
  const exit = body['exit_code'];
  if (exit !== undefined) {
    if (typeof exit !== 'number' || !Number.isInteger(exit) || exit === 0 || exit !== (exit | 0))
      report(`exit_code ${JSON.stringify(exit)} (0 must be omitted; int32 otherwise)`);
    if (state !== 'failed') report(`exit_code with state ${String(state)}`);
  }
}

/** Every request (§0): `gitlab-runner` User-Agent, a 32-hex X-Request-Id, no token in the URL. */
export function checkCommon(r: SeenRequest, secrets: string[], v: Violations): void {
  const ua = header(r, 'user-agent') ?? '';
  if (!/^gitlab-runner \S+ \(.+\)$/.test(ua)) v(r.seq, `User-Agent ${JSON.stringify(ua)}`);
  if (!/^[0-9a-f]{32}$/.test(header(r, 'x-request-id') ?? ''))
    v(r.seq, `X-Request-Id ${header(r, 'x-request-id')}`);
  const target = r.path + '?' + r.query.toString();
  for (const secret of secrets) {
    if (target.includes(secret) || target.includes(encodeURIComponent(secret)))
      v(r.seq, 'a token in the URL');
  }
}

/** A JSON call: `Content-Type: application/json`, `Accept` when a body comes back, an object body. */
export function parseJsonBody(r: SeenRequest, expectReply: boolean, v: Violations): Record<string, unknown> {
  if (header(r, 'content-type') !== 'application/json')
    v(r.seq, `${r.route}: Content-Type ${header(r, 'content-type')}`);
  if (expectReply && !(header(r, 'accept') ?? '').includes('application/json'))
    v(r.seq, `${r.route}: Accept ${header(r, 'accept')}`);
  try {
    const value = JSON.parse(r.body.toString('utf8')) as unknown;
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      r.json = value as Record<string, unknown>;
      return r.json;
    }
  } catch {
    // reported below
  }
  v(r.seq, `${r.route}: body is not a JSON object`);
  return {};
}

/**
 * A runner-level call (§0, §1): the token in the body and in RUNNER-TOKEN, a valid system_id, the
 * info object, no unknown keys. The body when the token is the runner's, else undefined.
 */
export function checkRunnerCall(
  r: SeenRequest,
  runnerToken: string,
  allowed: string[],
  v: Violations,
): Record<string, unknown> | undefined {
  const body = parseJsonBody(r, true, v);
  for (const k of Object.keys(body)) if (!allowed.includes(k)) v(r.seq, `${r.route}: unknown key ${k}`);
  if (header(r, 'runner-token') !== runnerToken) v(r.seq, `${r.route}: RUNNER-TOKEN header`);
  if (body['token'] !== runnerToken) v(r.seq, `${r.route}: body token`);
  const sid = body['system_id'];
  if (typeof sid !== 'string' || !/^(s_[0-9a-f]{12}|r_[A-Za-z0-9]{12})$/.test(sid))
    v(r.seq, `${r.route}: system_id ${JSON.stringify(sid)}`);
  checkInfo(body['info'], (msg) => v(r.seq, `${r.route}: ${msg}`));
  const token = header(r, 'runner-token') ?? body['token'];
  return token === runnerToken ? body : undefined;
}

/**
 * `PATCH /jobs/:id/trace` (§4): after the start PUT, `debug_trace` as the job's CI_DEBUG_TRACE,
 * `text/plain`, `Content-Range: <start>-<start+len-1>`, 1 byte to 1 MiB. The range when parseable.
 */
export function checkTracePatch(
  r: SeenRequest,
  job: FakeJob | undefined,
  v: Violations,
): { start: number } | undefined {
  if (job) {
    if (job.puts.length === 0) v(r.seq, 'trace: PATCH before the start PUT');
    const debug = parseGoBool(jobVar(job, 'CI_DEBUG_TRACE') ?? '') ? 'true' : 'false';
    if ([...r.query.keys()].join() !== 'debug_trace' || r.query.get('debug_trace') !== debug)
      v(r.seq, `trace: query ${r.query.toString()} (want debug_trace=${debug})`);
  }
  if (header(r, 'content-type') !== 'text/plain')
    v(r.seq, `trace: Content-Type ${header(r, 'content-type')}`);
  const range = /^(\d+)-(\d+)$/.exec(header(r, 'content-range') ?? '');
  const len = r.body.length;
  if (!range) v(r.seq, `trace: Content-Range ${header(r, 'content-range')}`);
  else if (Number(range[2]) !== Number(range[1]) + len - 1)
    v(r.seq, `trace: Content-Range ${range[0]} for ${len} bytes`);
  if (len === 0 || len > MIB) v(r.seq, `trace: ${len} bytes`);
  return range ? { start: Number(range[1]) } : undefined;
}

export function checksum(bytes: Uint8Array): string {
  return 'crc32:' + (crc32(bytes) >>> 0).toString(16).padStart(8, '0');
}

function jobVar(job: FakeJob, key: string): string | undefined {
  const vars = (job.payload['variables'] ?? []) as { key: string; value: string }[];
  return [...vars].reverse().find((x) => x.key === key)?.value;
}
