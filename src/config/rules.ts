/**
 * Semantic rules on top of the schema: small named functions, each checking one thing and reporting
 * drafts with a JSON pointer. Fleet rules see one raw document and must cope with values of the
 * wrong type (the schema reports those; a rule just skips them), so every error shows up in one run.
 * Cross-fleet rules see every document of every file.
 */
import { isKnownTimeZone, periodProblem } from './cron.js';
import { parseHostPort } from './hosts.js';
import { fieldPath, looksLikeToken, quoteValue, toPointer } from './issues.js';
import type { IssueDraft } from './schema.js';
import type { Position } from './yaml-source.js';
import { DURATION_HINT, formatDuration, parseDuration } from '../util/duration.js';

export type Raw = Record<string, unknown>;
export type Report = (issue: IssueDraft) => void;
export type FleetRule = (fleet: Raw, report: Report) => void;

/** A document as cross-fleet rules see it: its data and where it lives. */
export interface FleetEntry {
  file: string;
  fleet: Raw;
  locate(pointer: string): Position;
}
export type CrossFleetRule = (
  entries: FleetEntry[],
  report: (entry: FleetEntry, issue: IssueDraft) => void,
) => void;

const obj = (v: unknown): Raw | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Raw) : undefined;
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const int = (v: unknown): number | undefined => (Number.isInteger(v) ? (v as number) : undefined);
const error = (pointer: string, message: string, hint?: string): IssueDraft => ({
  severity: 'error',
  pointer,
  message,
  ...(hint !== undefined && { hint }),
});
const warning = (pointer: string, message: string, hint?: string): IssueDraft => ({
  ...error(pointer, message, hint),
  severity: 'warning',
});

/** Policy entries as written, with their pointers; the default single entry when absent. */
function policies(fleet: Raw): { entry: Raw; at: string }[] {
  return list(fleet.policy).flatMap((p, i) => {
    const entry = obj(p);
    return entry ? [{ entry, at: toPointer(['policy', i]) }] : [];
  });
}

/**
 * A token written inline is refused, and the message never repeats it: it is a secret, and this
 * message ends up in terminals, CI logs and the daemon's log.
 */
export const noInlineToken: FleetRule = (fleet, report) => {
  const token = obj(fleet.gitlab)?.token;
  if (typeof token !== 'string' && typeof token !== 'number') return;
  const kind = looksLikeToken(String(token)) ? 'a GitLab token' : 'a literal value';
  report({
    ...error(
      '/gitlab/token',
      `gitlab.token is ${kind} written inline; secrets must not be stored in fleet files`,
      'use token: {env: NAME} or token: {file: PATH}, and rotate the token if this file was ever committed',
    ),
    replacesSchemaErrors: true,
  });
};

/** S3 keys written inline are refused like the token, and never repeated. */
export const noInlineCacheKeys: FleetRule = (fleet, report) => {
  const s3 = obj(obj(fleet.cache)?.s3);
  for (const field of ['access_key', 'secret_key'] as const) {
    const value = s3?.[field];
    if (typeof value !== 'string' && typeof value !== 'number') continue;
    report({
      ...error(
        `/cache/s3/${field}`,
        `cache.s3.${field} is written inline; secrets must not be stored in fleet files`,
        `use ${field}: {env: NAME} or ${field}: {file: PATH}, and rotate the key if this file was ever committed`,
      ),
      replacesSchemaErrors: true,
    });
  }
};

/** `type: s3` needs its bucket; access-key authentication needs both keys. */
export const cacheBlockComplete: FleetRule = (fleet, report) => {
  const cache = obj(fleet.cache);
  if (!cache) return;
  const s3 = obj(cache.s3);
  if (cache.type === 's3' && cache.s3 === undefined) {
    report(
      error(
        '/cache',
        'cache type s3 needs an s3 block',
        'add s3: {bucket_name: <bucket>, server_address: <host>}',
      ),
    );
  }
  if (cache.type === 'local' && cache.s3 !== undefined) {
    report(
      error(
        '/cache/s3',
        'an s3 block is set but cache type is local',
        'set type: s3, or remove the s3 block',
      ),
    );
  }
  if (!s3) return;
  const keys = ['access_key', 'secret_key'].filter((k) => s3[k] !== undefined);
  if (s3.authentication_type === 'access-key' && keys.length < 2) {
    report(
      error(
        '/cache/s3/authentication_type',
        'authentication_type access-key needs both access_key and secret_key',
        'add access_key: {env: NAME} and secret_key: {env: NAME}, or use authentication_type: iam',
      ),
    );
  } else if (s3.authentication_type === undefined && keys.length === 1) {
    report(
      error(
        `/cache/s3/${keys[0]}`,
        `cache.s3 sets ${keys[0]} without ${keys[0] === 'access_key' ? 'secret_key' : 'access_key'}`,
        'set both keys, or neither to use the AWS credential chain (authentication_type: iam)',
      ),
    );
  } else if (s3.authentication_type === 'iam' && keys.length > 0) {
    report(
      warning(
        `/cache/s3/${keys[0]}`,
        'authentication_type iam ignores access_key and secret_key',
        'remove the keys, or set authentication_type: access-key',
      ),
    );
  }
};

export const dockerBlockMatchesExecutor: FleetRule = (fleet, report) => {
  const executor = fleet.executor ?? 'instance';
  if (executor === 'docker' && fleet.docker === undefined) {
    report(
      error('/executor', 'executor docker needs a docker block', 'add docker: {image: <default job image>}'),
    );
  }
  if (executor === 'instance' && fleet.docker !== undefined) {
    const implicit = fleet.executor === undefined ? ' (the default)' : '';
    report(
      error(
        '/docker',
        `a docker block is set but executor is instance${implicit}`,
        'set executor: docker, or remove the docker block',
      ),
    );
  }
};

export const awsGroupSource: FleetRule = (fleet, report) => {
  const provider = obj(fleet.provider);
  if (provider?.type !== 'aws') return;
  const adopt = provider.auto_scaling_group !== undefined;
  const create = provider.create !== undefined;
  const hint = 'auto_scaling_group adopts an existing group; create makes runfleet own a new one';
  if (adopt && create)
    report(error('/provider/create', 'provider sets both auto_scaling_group and create; choose one', hint));
  if (!adopt && !create) report(error('/provider', 'provider aws needs auto_scaling_group or create', hint));
};

export const launchTemplateReference: FleetRule = (fleet, report) => {
  const lt = obj(obj(obj(fleet.provider)?.create)?.launch_template);
  if (!lt) return;
  const at = '/provider/create/launch_template';
  if (lt.id !== undefined && lt.name !== undefined) {
    report(error(at, 'launch_template sets both id and name; choose one'));
  } else if (lt.id === undefined && lt.name === undefined) {
    report(error(at, 'launch_template needs id or name'));
  }
};

export const validTimezones: FleetRule = (fleet, report) => {
  for (const { entry, at } of policies(fleet)) {
    const tz = str(entry.timezone);
    if (tz !== undefined && !isKnownTimeZone(tz)) {
      report(
        error(
          `${at}/timezone`,
          `${fieldPath(`${at}/timezone`)} ${quoteValue(tz)} is not a known IANA time zone`,
          'use a zone name such as UTC, Europe/Berlin or America/New_York',
        ),
      );
    }
  }
};

export const validPeriods: FleetRule = (fleet, report) => {
  for (const { entry, at } of policies(fleet)) {
    const written = str(entry.timezone);
    const tz = written !== undefined && isKnownTimeZone(written) ? written : 'UTC';
    list(entry.periods).forEach((period, i) => {
      if (typeof period !== 'string') return;
      const problem = periodProblem(period, tz);
      if (problem === undefined) return;
      const pointer = `${at}/periods/${i}`;
      report(
        error(
          pointer,
          `${fieldPath(pointer)} ${quoteValue(period)} is not a valid cron period: ${problem}`,
          'write 5 fields: minute hour day-of-month month day-of-week, e.g. "* 8-18 * * mon-fri"',
        ),
      );
    });
  }
};

/**
 * Duration fields and the smallest value each may take: GitLab's schema has idle_time >= 1s; a
 * check_interval under 100ms would turn an empty queue into a request storm against GitLab.
 */
function durationFields(fleet: Raw): { pointer: string; value: unknown; minMs: number }[] {
  const connector = obj(fleet.connector);
  return [
    { pointer: '/connector/keepalive', value: connector?.keepalive, minMs: 1000 },
    { pointer: '/connector/timeout', value: connector?.timeout, minMs: 1000 },
    { pointer: '/gitlab/check_interval', value: obj(fleet.gitlab)?.check_interval, minMs: 100 },
    ...policies(fleet).map(({ entry, at }) => ({
      pointer: `${at}/idle_time`,
      value: entry.idle_time,
      minMs: 1000,
    })),
  ];
}

export const validDurations: FleetRule = (fleet, report) => {
  for (const { pointer, value, minMs } of durationFields(fleet)) {
    if (typeof value !== 'string') continue;
    let ms: number;
    try {
      ms = parseDuration(value);
    } catch {
      report(error(pointer, `${fieldPath(pointer)} ${quoteValue(value)} is not a duration`, DURATION_HINT));
      continue;
    }
    if (ms < minMs) report(error(pointer, `${fieldPath(pointer)} must be at least ${formatDuration(minMs)}`));
  }
};

export const idleCountWithinCapacity: FleetRule = (fleet, report) => {
  const max = int(fleet.max_instances);
  const cap = fleet.capacity_per_instance === undefined ? 1 : int(fleet.capacity_per_instance);
  // With an invalid max_instances or capacity the schema has already spoken; a product of them would mislead.
  if (max === undefined || cap === undefined || max < 1 || cap < 1) return;
  for (const { entry, at } of policies(fleet)) {
    const idle = int(entry.idle_count);
    if (idle === undefined || idle <= max * cap) continue;
    report(
      error(
        `${at}/idle_count`,
        `${fieldPath(`${at}/idle_count`)} ${idle} is more than max_instances × capacity_per_instance = ${max} × ${cap} = ${max * cap} slots`,
        'idle_count counts job slots, not instances; lower it or raise max_instances',
      ),
    );
  }
};

export const staticHostsParse: FleetRule = (fleet, report) => {
  const provider = obj(fleet.provider);
  if (provider?.type !== 'static') return;
  const hosts = list(provider.hosts);
  hosts.forEach((host, i) => {
    if (typeof host !== 'string' || parseHostPort(host) !== undefined) return;
    const pointer = `/provider/hosts/${i}`;
    report(
      error(
        pointer,
        `${fieldPath(pointer)} ${quoteValue(host)} is not host or host:port`,
        'e.g. 10.0.0.5, build-1.example.com:2222 or [fd00::5]:22',
      ),
    );
  });
  const max = int(fleet.max_instances);
  if (max !== undefined && hosts.length > 0 && max > hosts.length) {
    report(
      warning(
        '/max_instances',
        `max_instances ${max} is more than the ${hosts.length} static host${hosts.length === 1 ? '' : 's'}; at most ${hosts.length} instance${hosts.length === 1 ? '' : 's'} will run`,
      ),
    );
  }
};

/** Settings that validate but do nothing, or starve the fleet: warnings, not errors. */
export const policyPitfalls: FleetRule = (fleet, report) => {
  for (const { entry, at } of policies(fleet)) {
    if (int(entry.scale_factor_limit) && !entry.scale_factor) {
      report(
        warning(
          `${at}/scale_factor_limit`,
          `${fieldPath(`${at}/scale_factor_limit`)} has no effect while scale_factor is 0`,
        ),
      );
    }
    if (entry.preemptive_mode === true && !entry.idle_count && !entry.scale_factor) {
      report(
        warning(
          `${at}/preemptive_mode`,
          `${fieldPath(`${at}/preemptive_mode`)} is on but no idle capacity is kept, so no job will ever be requested`,
          'set idle_count above 0, or remove preemptive_mode',
        ),
      );
    }
  }
};

/** OpenSSH's default `MaxSessions`: sessions sshd allows on one connection. */
const OPENSSH_MAX_SESSIONS = 10;

/**
 * Each running job holds one SSH session on its instance. More slots than the connection allows
 * still run (runfleet opens another connection), but it is worth knowing the server's limit.
 */
export const sessionsWithinMaxSessions: FleetRule = (fleet, report) => {
  if (obj(fleet.provider)?.type === 'local') return;
  const capacity = int(fleet.capacity_per_instance);
  const written = int(obj(fleet.connector)?.max_sessions);
  const maxSessions = written ?? OPENSSH_MAX_SESSIONS;
  if (capacity === undefined || capacity <= maxSessions) return;
  report(
    warning(
      '/capacity_per_instance',
      `capacity_per_instance ${capacity} is more than the ${maxSessions} SSH sessions ${
        written !== undefined ? 'connector.max_sessions allows' : "OpenSSH's default MaxSessions allows"
      } on one connection; runfleet opens ${Math.ceil(capacity / maxSessions)} connections per instance`,
      `set MaxSessions ${capacity} (or more) in the instances' sshd_config and connector.max_sessions: ${capacity}, or lower capacity_per_instance`,
    ),
  );
};

export const FLEET_RULES: readonly FleetRule[] = [
  noInlineToken,
  noInlineCacheKeys,
  cacheBlockComplete,
  dockerBlockMatchesExecutor,
  awsGroupSource,
  launchTemplateReference,
  validTimezones,
  validPeriods,
  validDurations,
  idleCountWithinCapacity,
  staticHostsParse,
  policyPitfalls,
  sessionsWithinMaxSessions,
];

const where = (e: FleetEntry, pointer: string): string => {
  const p = e.locate(pointer);
  return `${e.file}:${p.line}:${p.col}`;
};

/** An entry's claim on something only one fleet may have (a name, a group), and where it is written. */
interface Claim {
  entry: FleetEntry;
  key: string;
  pointer: string;
}

/**
 * Every claim on a contested key gets an error naming the others. None of them wins: were the first
 * in file order kept, a new file sorting before a running fleet's would take that fleet over. With
 * every definition invalid, the daemon holds each fleet on its last good definition instead.
 */
function reportConflicts(
  claims: Claim[],
  message: (self: Claim, others: Claim[]) => string,
  hint: string,
  report: (entry: FleetEntry, issue: IssueDraft) => void,
): void {
  const byKey = new Map<string, Claim[]>();
  for (const c of claims) byKey.set(c.key, [...(byKey.get(c.key) ?? []), c]);
  for (const group of byKey.values()) {
    if (group.length < 2) continue;
    for (const self of group) {
      report(
        self.entry,
        error(
          self.pointer,
          message(
            self,
            group.filter((c) => c !== self),
          ),
          hint,
        ),
      );
    }
  }
}

/** Names are the fleet's identity (state, metrics, group names): one definition per name. */
export const uniqueNames: CrossFleetRule = (entries, report) => {
  const claims = entries.flatMap((entry) => {
    const name = str(entry.fleet.name);
    return name === undefined ? [] : [{ entry, key: name, pointer: '/name' }];
  });
  reportConflicts(
    claims,
    (self, others) =>
      `fleet name ${quoteValue(self.key)} is also defined at ${others.map((o) => where(o.entry, o.pointer)).join(', ')}`,
    'fleet names must be unique across all fleet files; rename or remove all but one (until then none is applied)',
    report,
  );
};

/**
 * Two fleets on one Auto Scaling group would fight over its desired capacity and delete each other's
 * instances (GitLab: "sharing an ASG ... is unsupported").
 */
export const oneFleetPerAutoScalingGroup: CrossFleetRule = (entries, report) => {
  const claims = entries.flatMap((entry) => {
    const provider = obj(entry.fleet.provider);
    const region = str(provider?.region);
    const name = str(entry.fleet.name);
    if (provider?.type !== 'aws' || region === undefined) return [];
    const adopted = str(provider.auto_scaling_group);
    // The created form owns `runfleet-<name>` (model/group.ts), which an adopting fleet could name too.
    const group =
      adopted ?? (provider.create !== undefined && name !== undefined ? `runfleet-${name}` : undefined);
    if (group === undefined) return [];
    const pointer = adopted !== undefined ? '/provider/auto_scaling_group' : '/provider/create';
    return [{ entry, key: `${region}\0${group}`, pointer }];
  });
  reportConflicts(
    claims,
    (self, others) => {
      const [region, group] = self.key.split('\0') as [string, string];
      const users = others.map(
        (o) => `fleet ${quoteValue(o.entry.fleet.name)} at ${where(o.entry, o.pointer)}`,
      );
      return `Auto Scaling group ${quoteValue(group)} in ${region} is also used by ${users.join(', ')}`;
    },
    'give each fleet its own group: fleets sharing one fight over its capacity (until then none is applied)',
    report,
  );
};

export const CROSS_FLEET_RULES: readonly CrossFleetRule[] = [uniqueNames, oneFleetPerAutoScalingGroup];
