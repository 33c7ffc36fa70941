/**
 * Registry credentials for image pulls, resolved per image the way gitlab-runner does
 * (helpers/docker/auth/auth.go): every source is read in order (`DOCKER_AUTH_CONFIG`, then the
 * fleet's docker config file, then the job's `credentials[]` of type `registry`); the first source
 * that names a registry keeps it; an image uses the entry whose path is the longest prefix of its
 * normalised name (`nginx` → `docker.io/nginx`, host lower-cased, tag cut). Credential values never
 * reach a log line: only source names and registry host names do.
 */
import type { JobCredentials } from '../gitlab/job.js';

/** What the Docker API takes in `X-Registry-Auth` (dockerode's `authconfig`). */
export interface RegistryAuth {
  username?: string;
  password?: string;
  auth?: string;
  identitytoken?: string;
  registrytoken?: string;
  serveraddress: string;
}

export interface RegistryEntry {
  /** Normalised registry path: `registry.example.com`, `docker.io`, `host:5000/group`. */
  path: string;
  /** For logs: `$DOCKER_AUTH_CONFIG`, the file's path, `job payload (GitLab Registry)`. */
  source: string;
  auth: RegistryAuth;
}

export interface AuthSource {
  /** Name for logs; never the content. */
  name: string;
  /** A Docker config JSON (`{"auths": {...}}`), or the job's credentials. */
  config?: string;
  credentials?: readonly JobCredentials[];
}

const DOCKER_IO = 'docker.io';

/** Parses a docker config JSON into entries; throws a message without any credential in it. */
export function parseDockerConfig(text: string): { auths: RegistryAuth[]; helpers: boolean } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error('not valid JSON');
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error('not a JSON object');
  const o = json as Record<string, unknown>;
  const helpers =
    typeof o.credsStore === 'string' || (typeof o.credHelpers === 'object' && o.credHelpers !== null);
  const auths = o.auths;
  if (auths === undefined) return { auths: [], helpers };
  if (auths === null || typeof auths !== 'object') throw new Error('"auths" is not an object');
  const out: RegistryAuth[] = [];
  for (const server of Object.keys(auths).sort()) {
    const e = (auths as Record<string, unknown>)[server];
    if (e === null || typeof e !== 'object') throw new Error(`"auths.${server}" is not an object`);
    const entry = e as Record<string, unknown>;
    const auth: RegistryAuth = { serveraddress: server };
    if (typeof entry.auth === 'string' && entry.auth !== '') {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw new Error(`"auths.${server}.auth" is not base64 of user:password`);
      auth.username = decoded.slice(0, colon);
      auth.password = decoded.slice(colon + 1);
    }
    for (const k of ['username', 'password', 'identitytoken', 'registrytoken'] as const) {
      if (typeof entry[k] === 'string' && entry[k] !== '') auth[k] = entry[k];
    }
    out.push(auth);
  }
  return { auths: out, helpers };
}

/** The registry path credentials for `server` apply to (auth.go `convertToRegistryPath`). */
export function registryPath(server: string): string {
  if (/^https?:\/\//i.test(server)) {
    const host = (server.replace(/^https?:\/\//i, '').split('/')[0] ?? '').toLowerCase();
    return host === `index.${DOCKER_IO}` ? DOCKER_IO : host;
  }
  let path = server.replace(/\/$/, '');
  const tag = path.lastIndexOf(':');
  const slash = path.lastIndexOf('/');
  if (slash !== -1 && tag > slash) path = path.slice(0, tag);
  return lowerHost(path);
}

/** An image name as registry paths are matched against it (auth.go `normalizeImageRef`). */
export function normalizeImage(image: string): string {
  const slash = image.lastIndexOf('/');
  const dir = image.slice(0, slash + 1);
  const last = (image.slice(slash + 1).split('@')[0] ?? '').split(':')[0] ?? '';
  let normalized = dir + last;
  const parts = normalized.split('/');
  const first = parts[0] ?? '';
  const dockerHub =
    parts.length === 1 ||
    (!first.includes('.') && !first.includes(':') && first.toLowerCase() !== 'localhost');
  if (dockerHub) normalized = `${DOCKER_IO}/${normalized}`;
  else if (first.toLowerCase() === `index.${DOCKER_IO}`) normalized = normalized.slice('index.'.length);
  return lowerHost(normalized);
}

function lowerHost(path: string): string {
  const i = path.indexOf('/');
  return i < 0 ? path.toLowerCase() : path.slice(0, i).toLowerCase() + path.slice(i);
}

export interface ResolvedAuth {
  entries: RegistryEntry[];
  /** Sources that could not be read, with why: for a warning in the job log. */
  warnings: string[];
}

/** Every registry entry of `sources`, first source first; a later duplicate path is dropped. */
export function registryEntries(sources: readonly AuthSource[]): ResolvedAuth {
  const entries: RegistryEntry[] = [];
  const warnings: string[] = [];
  for (const source of sources) {
    let auths: RegistryAuth[] = [];
    if (source.config !== undefined) {
      try {
        const parsed = parseDockerConfig(source.config);
        auths = parsed.auths;
        if (parsed.helpers) {
          warnings.push(
            `credential helpers (credsStore, credHelpers) in ${source.name} are not supported; only its "auths" are used`,
          );
        }
      } catch (e) {
        warnings.push(
          `Failed to resolve credentials from ${source.name}: ${(e as Error).message}. Credentials from this source will not be used.`,
        );
        continue;
      }
    }
    for (const c of source.credentials ?? []) {
      if (c.type !== 'registry') continue;
      auths.push({ username: c.username, password: c.password, serveraddress: c.url });
    }
    for (const auth of auths) {
      const path = registryPath(auth.serveraddress);
      if (entries.some((e) => e.path === path)) continue;
      entries.push({ path, source: source.name, auth });
    }
  }
  return { entries, warnings };
}

/** The entry for `image`: the longest registry path that is a prefix of its normalised name. */
export function authForImage(image: string, entries: readonly RegistryEntry[]): RegistryEntry | undefined {
  for (let p = normalizeImage(image); p !== ''; p = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '') {
    const hit = entries.find((e) => e.path === p);
    if (hit) return hit;
  }
  return undefined;
}
