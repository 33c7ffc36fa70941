/**
 * Realistic job payloads (docs/gitlab-job-api.md §2) for the test coordinator: the variables GitLab sends, a masked
 * secret, git_info with refspecs, script and after_script steps, and the features block.
 */
import { randomBytes } from 'node:crypto';
import type {
  JobArtifact,
  JobCredentials,
  JobDependency,
  JobPayload,
  JobService,
  JobVariable,
} from '../../runtime/gitlab/job.js';
import { KNOWN_FAILURE_REASONS } from './job-store.js';

export interface ExampleJobOptions {
  /** @default `job-<id>` */
  name?: string;
  /** @default 'test' */
  stage?: string;
  /** @default ['echo "hello from job <id>"'] */
  script?: string[];
  afterScript?: string[];
  /** Extra variables: a plain string is a public, unmasked value. */
  variables?: Record<string, string | Omit<JobVariable, 'key'>>;
  /**
   * Repository to fetch: a path, `file://` URL or http(s) URL. Without it the job gets
   * `GIT_STRATEGY=none` and no sources are fetched.
   */
  repoUrl?: string;
  /** The commit to check out; needed with `repoUrl`. */
  sha?: string;
  /** @default 'main' */
  ref?: string;
  /** @default 20 (0 fetches full history, with wildcard refspecs) */
  depth?: number;
  /** `runner_info.timeout`, seconds. @default 3600 */
  timeout?: number;
  image?: string;
  /** `services[]` as GitLab sends them. @default [] */
  services?: JobService[];
  /** `credentials[]` (registry credentials). @default none */
  credentials?: JobCredentials[];
  /** Job token. @default a random `glcbt-…` */
  token?: string;
  /** @default 'http://gitlab.example.com' (only used in CI_* variables) */
  serverUrl?: string;
  /** @default 7 */
  projectId?: number;
  /** @default 'demo' */
  projectName?: string;
  /** @default 1000 + id */
  pipelineId?: number;
  /** features.token_mask_prefixes. */
  tokenMaskPrefixes?: string[];
  /** `artifacts:` entries, as Rails sends them (§6). */
  artifacts?: JobArtifact[];
  /** Jobs whose artifacts this one needs; the coordinator adds `token` and `artifacts_file` when handing it out. */
  dependencies?: JobDependency[];
}

/** A job payload shaped like Rails' (§2). */
export function exampleJob(id: number, opts: ExampleJobOptions = {}): JobPayload {
  const token = opts.token ?? `glcbt-64_${randomBytes(15).toString('base64url')}`;
  const name = opts.name ?? `job-${id}`;
  const stage = opts.stage ?? 'test';
  const ref = opts.ref ?? 'main';
  const sha = opts.sha ?? '0'.repeat(40);
  const depth = opts.depth ?? 20;
  const projectName = opts.projectName ?? 'demo';
  const projectPath = `acme/${projectName}`;
  const projectId = opts.projectId ?? 7;
  const pipelineId = opts.pipelineId ?? 1000 + id;
  const serverUrl = (opts.serverUrl ?? 'http://gitlab.example.com').replace(/\/+$/, '');
  const timeout = opts.timeout ?? 3600;

  const variables: JobVariable[] = [
    pub('CI_JOB_ID', String(id)),
    pub('CI_JOB_NAME', name),
    pub('CI_JOB_STAGE', stage),
    pub('CI_JOB_URL', `${serverUrl}/${projectPath}/-/jobs/${id}`),
    { key: 'CI_JOB_TOKEN', value: token, public: false, masked: true },
    pub('CI_PIPELINE_ID', String(pipelineId)),
    pub('CI_SERVER_URL', serverUrl),
    pub('CI_PROJECT_ID', String(projectId)),
    pub('CI_PROJECT_NAME', projectName),
    pub('CI_PROJECT_PATH', projectPath),
    pub('CI_COMMIT_SHA', sha),
    pub('CI_COMMIT_REF_NAME', ref),
    pub('CI_COMMIT_BRANCH', ref),
    pub('CI_RUNNER_ID', '1'),
    pub('CI_RUNNER_TAGS', '[]'),
    pub('GITLAB_CI', 'true'),
    pub('CI', 'true'),
  ];
  if (!opts.repoUrl) variables.push(pub('GIT_STRATEGY', 'none'));
  for (const [key, v] of Object.entries(opts.variables ?? {})) {
    variables.push(typeof v === 'string' ? pub(key, v) : { key, public: false, masked: false, ...v });
  }

  const steps: JobPayload['steps'] = [
    {
      name: 'script',
      script: opts.script ?? [`echo "hello from job ${id}"`],
      timeout,
      when: 'on_success',
      allow_failure: false,
    },
  ];
  if (opts.afterScript?.length) {
    steps.push({
      name: 'after_script',
      script: opts.afterScript,
      timeout,
      when: 'always',
      allow_failure: true,
    });
  }

  return {
    id,
    token,
    allow_git_fetch: true,
    job_info: { id, name, stage, project_id: projectId, project_name: projectName },
    git_info: {
      repo_url: opts.repoUrl ? withJobToken(opts.repoUrl, token) : `${serverUrl}/${projectPath}.git`,
      repo_object_format: 'sha1',
      ref,
      sha,
      before_sha: '0'.repeat(40),
      ref_type: 'branch',
      refspecs:
        depth === 0
          ? [
              `+${sha}:refs/pipelines/${pipelineId}`,
              '+refs/heads/*:refs/remotes/origin/*',
              '+refs/tags/*:refs/tags/*',
            ]
          : [`+${sha}:refs/pipelines/${pipelineId}`, `+refs/heads/${ref}:refs/remotes/origin/${ref}`],
      depth,
    },
    runner_info: { timeout },
    variables,
    steps,
    image: opts.image ? { name: opts.image, entrypoint: null } : null,
    services: opts.services ?? [],
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
    ...(opts.artifacts ? { artifacts: opts.artifacts } : {}),
    ...(opts.dependencies ? { dependencies: opts.dependencies } : {}),
    features: {
      trace_sections: true,
      token_mask_prefixes: opts.tokenMaskPrefixes ?? [],
      failure_reasons: [...KNOWN_FAILURE_REASONS],
    },
  };
}

function pub(key: string, value: string): JobVariable {
  return { key, value, public: true, masked: false };
}

/** GitLab embeds `gitlab-ci-token:<job token>@` in http(s) clone URLs; local paths stay as they are. */
function withJobToken(repoUrl: string, token: string): string {
  if (!/^https?:\/\//.test(repoUrl)) return repoUrl;
  const url = new URL(repoUrl);
  url.username = 'gitlab-ci-token';
  url.password = token;
  return url.toString();
}
