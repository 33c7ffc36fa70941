/** Registry credentials resolved per image as gitlab-runner's helpers/docker/auth/auth.go does. */
import t from 'tap';
import {
  authForImage,
  normalizeImage,
  parseDockerConfig,
  registryEntries,
  registryPath,
} from '../../../src/runtime/executors/docker-auth.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

t.test('image names and registry paths normalise alike', async (t) => {
  t.equal(normalizeImage('nginx'), 'docker.io/nginx');
  t.equal(normalizeImage('library/nginx:1.25'), 'docker.io/library/nginx');
  t.equal(normalizeImage('index.docker.io/nginx'), 'docker.io/nginx');
  t.equal(normalizeImage('Registry.Example.COM:5000/Group/app:1'), 'registry.example.com:5000/Group/app');
  t.equal(normalizeImage('localhost/app'), 'localhost/app');
  t.equal(registryPath('https://index.docker.io/v1/'), 'docker.io');
  t.equal(registryPath('https://Registry.Example.com/v2/'), 'registry.example.com');
  t.equal(registryPath('registry.example.com/group/'), 'registry.example.com/group');
  t.equal(registryPath('127.0.0.1:5000'), '127.0.0.1:5000');
});

t.test('sources in order, the first to name a registry keeps it, the longest path wins', async (t) => {
  const job = JSON.stringify({
    auths: {
      'registry.example.com': { auth: b64('job-user:job-pass') },
      'registry.example.com/special': { username: 'special', password: 'sp' },
    },
  });
  const file = JSON.stringify({
    auths: { 'registry.example.com': { auth: b64('file:x') }, 'other.tld': { auth: b64('o:p') } },
  });
  const { entries, warnings } = registryEntries([
    { name: '$DOCKER_AUTH_CONFIG', config: job },
    { name: '/etc/docker.json', config: file },
    {
      name: 'job payload (GitLab Registry)',
      credentials: [
        { type: 'registry', url: 'gitlab.example.com:5050', username: 'gitlab-ci-token', password: 'tok' },
        { type: 'other', url: 'x', username: 'y', password: 'z' },
      ],
    },
  ]);
  t.strictSame(warnings, []);
  t.strictSame(
    entries.map((e) => [e.path, e.source]),
    [
      ['registry.example.com', '$DOCKER_AUTH_CONFIG'],
      ['registry.example.com/special', '$DOCKER_AUTH_CONFIG'],
      ['other.tld', '/etc/docker.json'],
      ['gitlab.example.com:5050', 'job payload (GitLab Registry)'],
    ],
  );
  t.match(authForImage('registry.example.com/group/app:1', entries)?.auth, {
    username: 'job-user',
    password: 'job-pass',
  });
  t.match(authForImage('registry.example.com/special/app', entries)?.auth, { username: 'special' });
  t.match(authForImage('gitlab.example.com:5050/g/p/ci:1', entries)?.auth, { password: 'tok' });
  t.equal(authForImage('nginx', entries), undefined, 'no credentials for Docker Hub');
});

t.test('bad sources are warnings without their content; helpers are said to be ignored', async (t) => {
  const { entries, warnings } = registryEntries([
    {
      name: '$DOCKER_AUTH_CONFIG',
      config: '{"auths": {"r.tld": {"auth": "' + b64('no-colon-secret') + '"}}}',
    },
    { name: 'f.json', config: 'not json s3cret' },
    {
      name: 'h.json',
      config: JSON.stringify({ credsStore: 'desktop', auths: { 'h.tld': { auth: b64('a:b') } } }),
    },
  ]);
  t.strictSame(
    entries.map((e) => e.path),
    ['h.tld'],
  );
  t.equal(warnings.length, 3);
  t.match(warnings[0], 'Failed to resolve credentials from $DOCKER_AUTH_CONFIG');
  t.match(warnings[1], 'f.json: not valid JSON');
  t.match(warnings[2], 'credential helpers');
  t.notMatch(warnings.join('\n'), /secret/, 'no credential text in a warning');
  t.throws(() => parseDockerConfig('[]'), /not a JSON object/);
});
