/** Service aliases and image names as gitlab-runner derives them (helpers/container/services). */
import t from 'tap';
import { expandWith, splitServiceName, writtenAliases } from '../../../src/runtime/executors/docker-names.js';

const DIGEST = '@sha256:' + '1234567890'.repeat(6) + 'abcd';

t.test('SplitNameAndVersion table', async (t) => {
  const cases: [string, string, string, string, string[]][] = [
    // name, image, service, version, aliases
    ['postgres:15', 'postgres:15', 'postgres', '15', ['postgres']],
    ['service', 'service:latest', 'service', 'latest', ['service']],
    [
      'tutum/wordpress',
      'tutum/wordpress:latest',
      'tutum/wordpress',
      'latest',
      ['tutum__wordpress', 'tutum-wordpress'],
    ],
    [
      'domain.tld:8080/namespace/service:version',
      'domain.tld:8080/namespace/service:version',
      'domain.tld/namespace/service',
      'version',
      ['domain.tld__namespace__service', 'domain.tld-namespace-service'],
    ],
    [
      'subdomain.domain.tld:8080/service',
      'subdomain.domain.tld:8080/service:latest',
      'subdomain.domain.tld/service',
      'latest',
      ['subdomain.domain.tld__service', 'subdomain.domain.tld-service'],
    ],
    [
      `namespace/service${DIGEST}`,
      `namespace/service${DIGEST}`,
      'namespace/service',
      DIGEST,
      ['namespace__service', 'namespace-service'],
    ],
  ];
  for (const [name, image, service, version, aliases] of cases) {
    t.strictSame(splitServiceName(name), { service, version, image, aliases }, name);
  }
  t.equal(splitServiceName('Not A Name').service, '', 'an unparsable name has no service part');
});

t.test('written aliases split at commas and spaces; $VAR expansion', async (t) => {
  t.strictSame(writtenAliases('db, cache  queue'), ['db', 'cache', 'queue']);
  t.strictSame(writtenAliases(null), []);
  const vars = [
    { key: 'CI_REGISTRY_IMAGE', value: 'registry.example.com/group/app' },
    { key: 'TAG', value: '1' },
  ];
  t.equal(expandWith('$CI_REGISTRY_IMAGE/ci:${TAG}', vars), 'registry.example.com/group/app/ci:1');
  t.equal(expandWith('$UNKNOWN/x', vars), '/x', 'an unknown variable expands to nothing, as in the runner');
});
