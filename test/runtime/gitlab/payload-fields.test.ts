/**
 * Every field GitLab's job payload can carry (`G:lib/api/entities/ci/job_request/*.rb`, the EE
 * `secrets` entity, `R:common/spec/spec.go` `Job`) is described by runfleet's table and behaves as
 * the table says: used, informational, warned about in the job log, or refused with a message
 * naming the keyword. A field outside the table is named in the job log.
 */
import t from 'tap';
import { PAYLOAD_FIELDS, unknownPayloadFields } from '../../../src/runtime/gitlab/payload-fields.js';
import { unsupportedJobReason, unsupportedJobWarnings } from '../../../src/runtime/gitlab/refuse.js';
import type { JobPayload } from '../../../src/runtime/gitlab/job.js';
import { exampleJob } from '../../../src/devtools/coordinator/example-job.js';
import { makeJob } from '../../fixtures/runtime/job.js';

/** GitLab's entities, field by field (response.rb and the entities it uses, EE included). */
const GITLAB_FIELDS = [
  // response.rb
  'id',
  'token',
  'allow_git_fetch',
  'job_info',
  'git_info',
  'runner_info',
  'variables',
  'steps',
  'hooks',
  'image',
  'services',
  'artifacts',
  'cache',
  'credentials',
  'features',
  'dependencies',
  'run',
  // EE response, spec.go
  'secrets',
  'inputs',
  'policy_options',
  'suspend_options',
  // job_info.rb
  'job_info.id',
  'job_info.name',
  'job_info.stage',
  'job_info.pipeline_id',
  'job_info.project_id',
  'job_info.project_name',
  'job_info.project_full_path',
  'job_info.namespace_id',
  'job_info.root_namespace_id',
  'job_info.organization_id',
  'job_info.instance_id',
  'job_info.instance_uuid',
  'job_info.user_id',
  'job_info.scoped_user_id',
  'job_info.time_in_queue_seconds',
  'job_info.project_jobs_running_on_instance_runners_count',
  'job_info.queue_size',
  'job_info.queue_depth',
  // git_info.rb
  'git_info.repo_url',
  'git_info.ref',
  'git_info.sha',
  'git_info.before_sha',
  'git_info.ref_type',
  'git_info.refspecs',
  'git_info.depth',
  'git_info.repo_object_format',
  'git_info.protected',
  // runner_info.rb
  'runner_info.timeout',
  'runner_info.runner_session_url',
  'runner_info.uuid',
  // image.rb
  'image.name',
  'image.entrypoint',
  'image.ports',
  'image.pull_policy',
  'image.executor_opts',
  // features (Rails' build features hash, spec.go GitlabFeatures)
  'features.trace_sections',
  'features.token_mask_prefixes',
  'features.failure_reasons',
  'features.tracing',
];

/** A payload carrying `path` with a value that means "this job uses it". */
function withField(path: string): JobPayload {
  const job = makeJob() as unknown as Record<string, Record<string, unknown>>;
  const values: Record<string, unknown> = {
    run: JSON.stringify([{ name: 'hello', script: 'echo hi' }]),
    secrets: {
      DATABASE_PASSWORD: { vault: { engine: { name: 'kv-v2', path: 'kv' }, path: 'db', field: 'pw' } },
    },
    inputs: [{ key: 'env', value: { type: 'string', content: 'prod' } }],
    suspend_options: { suspend_on_success: true },
    services: [{ name: 'postgres:16' }],
    artifacts: [{ name: 'build', paths: ['dist/'] }],
    cache: [{ key: 'deps', paths: ['node_modules/'] }],
    dependencies: [{ id: 1, name: 'build', artifacts_file: { filename: 'a.zip', size: 1 } }],
  };
  const [parent, child] = path.split('.');
  if (child) {
    job[parent!] = { ...(job[parent!] ?? {}), [child]: job[parent!]?.[child] ?? 'x' };
  } else if (!(parent! in job) || values[parent!] !== undefined) {
    (job as Record<string, unknown>)[parent!] = values[parent!] ?? {};
  }
  return job as unknown as JobPayload;
}

t.test("every field of GitLab's job payload is in runfleet's table", async (t) => {
  for (const field of GITLAB_FIELDS) t.ok(field in PAYLOAD_FIELDS, `${field} is described`);
});

t.test('each field behaves as the table says', async (t) => {
  for (const [field, use] of Object.entries(PAYLOAD_FIELDS)) {
    if (field.includes('[]')) continue;
    const job = withField(field);
    const reason = unsupportedJobReason(job);
    const warnings = unsupportedJobWarnings(job);
    t.notOk(unknownPayloadFields(job).includes(field), `${field}: known`);
    if (use.kind === 'refused') {
      t.ok(reason, `${field}: refused`);
      const keyword = field === 'suspend_options' ? 'suspend_options' : `${field}:`;
      t.match(reason ?? '', keyword, `${field}: the message names the keyword`);
    } else {
      t.equal(reason, undefined, `${field}: not refused`);
    }
    if (use.kind === 'warned') t.ok(warnings.length > 0, `${field}: warned in the job log`);
    if (use.kind === 'informational') t.ok(use.why.length > 10, `${field}: says why it is not read`);
  }
});

t.test('a Vault secret is refused naming secrets: and the provider', async (t) => {
  const reason = unsupportedJobReason(withField('secrets'));
  t.match(reason, /`secrets:` \(vault\)/);
  const empty = makeJob() as JobPayload & { secrets?: unknown };
  empty.secrets = {};
  t.equal(unsupportedJobReason(empty), undefined, 'an empty secrets object is no use of secrets');
});

t.test('a field GitLab adds later is named in the job log', async (t) => {
  const job = makeJob() as JobPayload & Record<string, unknown>;
  job['brand_new_field'] = { some: 'thing' };
  (job.git_info as unknown as Record<string, unknown>)['shiny'] = true;
  t.same(unknownPayloadFields(job), ['brand_new_field', 'git_info.shiny']);
  t.match(unsupportedJobWarnings(job).join('\n'), /`brand_new_field`[\s\S]*`git_info\.shiny`/);
  t.same(unknownPayloadFields(exampleJob(1)), [], "the dev coordinator's payload is fully described");
});
