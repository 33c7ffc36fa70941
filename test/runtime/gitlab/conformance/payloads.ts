/**
 * Job payloads as Rails builds them (§2), written from the spec rather than from the project's
 * example-job helper: a full one, and a lean one that leaves out every optional key and adds keys
 * runfleet has never heard of.
 */
import { randomBytes } from 'node:crypto';
import type { FakeJob } from './strict-gitlab.js';

export const REASONS_OF_THIS_GITLAB = [
  'unknown_failure',
  'script_failure',
  'runner_system_failure',
  'job_execution_timeout',
  'api_failure',
  'stuck_or_timeout_failure',
];

interface JobOpts {
  script?: string[];
  afterScript?: string[];
  variables?: { key: string; value: string; masked?: boolean; raw?: boolean; file?: boolean }[];
  timeout?: number;
}

function jobToken(): string {
  return `glcbt-64_${randomBytes(15).toString('base64url')}`;
}

/** Every key the spec example shows, `features.failure_reasons` listing only a few reasons. */
export function fullJob(id: number, opts: JobOpts = {}): FakeJob['payload'] {
  const token = jobToken();
  const sha = 'a'.repeat(40);
  return {
    id,
    token,
    allow_git_fetch: true,
    job_info: { id, name: `job-${id}`, stage: 'test', project_id: 7, project_name: 'demo' },
    git_info: {
      repo_url: `https://gitlab-ci-token:${token}@gitlab.example.com/acme/demo.git`,
      repo_object_format: 'sha1',
      ref: 'main',
      sha,
      before_sha: '0'.repeat(40),
      ref_type: 'branch',
      refspecs: [`+${sha}:refs/pipelines/311`, '+refs/heads/main:refs/remotes/origin/main'],
      depth: 20,
      protected: true,
    },
    runner_info: { timeout: opts.timeout ?? 3600 },
    variables: [
      { key: 'CI_JOB_ID', value: String(id), public: true, masked: false },
      { key: 'CI_JOB_NAME', value: `job-${id}`, public: true, masked: false },
      { key: 'CI_JOB_TOKEN', value: token, public: false, masked: true },
      { key: 'CI_PROJECT_PATH', value: 'acme/demo', public: true, masked: false },
      { key: 'GIT_STRATEGY', value: 'none', public: true, masked: false },
      ...(opts.variables ?? []).map((v) => ({ public: false, masked: false, ...v })),
    ],
    steps: [
      {
        name: 'script',
        script: opts.script ?? ['echo hello'],
        timeout: 3600,
        when: 'on_success',
        allow_failure: false,
      },
      ...(opts.afterScript
        ? [
            {
              name: 'after_script',
              script: opts.afterScript,
              timeout: 3600,
              when: 'always',
              allow_failure: true,
            },
          ]
        : []),
    ],
    image: { name: 'alpine:3.20', entrypoint: null, ports: [] },
    services: [],
    artifacts: [],
    cache: [],
    credentials: [],
    dependencies: [],
    features: { trace_sections: true, token_mask_prefixes: [], failure_reasons: REASONS_OF_THIS_GITLAB },
  };
}

/**
 * What a lean Rails reply can look like: no `features`, `image`, `hooks`, `services`,
 * `allow_git_fetch`; steps without `when`; variables without `public`; `runner_info.timeout` 0;
 * plus keys this runfleet does not know (newer GitLab).
 */
export function leanJob(id: number, opts: JobOpts = {}): FakeJob['payload'] {
  const token = jobToken();
  return {
    id,
    token,
    job_info: {
      id,
      name: `lean-${id}`,
      stage: 'test',
      project_id: 9,
      project_name: 'lean',
      time_in_queue_seconds: 1,
    },
    git_info: {
      repo_url: 'https://gitlab.example.com/acme/lean.git',
      ref: 'main',
      sha: 'b'.repeat(40),
      ref_type: 'branch',
    },
    runner_info: { timeout: opts.timeout ?? 0, runner_session_url: null },
    variables: [
      { key: 'CI_JOB_ID', value: String(id) },
      { key: 'GIT_STRATEGY', value: 'none' },
      ...(opts.variables ?? []),
    ],
    steps: [{ name: 'script', script: opts.script ?? ['echo lean'] }],
    policy_options: { execution_policy_job: false },
    suspend_options: {},
    some_future_key: { nested: [1, 2, 3] },
  };
}
