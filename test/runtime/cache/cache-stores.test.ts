/** Which store a job's caches go to, and how the S3 keys are read: by reference, never printed. */
import t from 'tap';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { CacheStores } from '../../../src/runtime/cache/cache-stores.js';
import { LocalConnector } from '../../../src/runtime/connectors/local-connector.js';
import type { CacheSpec } from '../../../src/model/fleet.js';
import { fleetSpec } from '../../helpers/fake-state.js';
import { makeJob } from '../../fixtures/runtime/job.js';

const job = makeJob();
const project = job.variables.find((v) => v.key === 'CI_PROJECT_PATH')?.value;
const connector = new LocalConnector({ workdir: '/tmp' });
const local = {
  id: 'i-1',
  address: '127.0.0.1',
  port: 0,
  username: 'me',
  protocol: 'local' as const,
  workdir: '/tmp/x',
};
const ssh = { id: 'i-2', address: '127.0.0.9', port: 22, protocol: 'ssh' as const, username: 'root' };
const s3Cache = (secret: string): CacheSpec => ({
  type: 's3',
  path: 'p',
  shared: false,
  max_uploaded_archive_size: 0,
  s3: {
    server_address: '127.0.0.1:9',
    bucket_name: 'b',
    bucket_location: 'eu-west-1',
    insecure: true,
    authentication_type: 'access-key',
    access_key: { env: 'T_ACCESS' },
    secret_key: { env: secret },
  },
});

t.test('without a cache block: the state dir for local sandboxes, the instance otherwise', async (t) => {
  const stores = new CacheStores({ stateDir: '/state', s3Client: async (c) => new S3Client(c) });
  const req = { fleet: fleetSpec(), connector, job, shortToken: 'abcdefghi' };
  const onManager = await stores.forJob({ ...req, info: local });
  t.equal(onManager.where('k'), `/state/cache/${project ?? ''}/k/cache.zip`);
  t.notOk(onManager.onInstance);
  const onInstance = await stores.forJob({ ...req, info: ssh });
  t.equal(onInstance.where('k'), `/tmp/runfleet-cache/${project ?? ''}/k/cache.zip`);
  t.ok(onInstance.onInstance);
  const typed = await stores.forJob({
    ...req,
    fleet: fleetSpec({ cache: { type: 'local', path: '', shared: true, max_uploaded_archive_size: 0 } }),
    info: ssh,
  });
  t.equal(typed.where('k'), `/state/cache/project/${job.job_info.project_id}/k`, 'type local: object names');
});

t.test('s3: keys resolved from their references, one client per fleet and block', async (t) => {
  const configs: S3ClientConfig[] = [];
  const clients: S3Client[] = [];
  const secret = 'very-secret-cache-key-9931';
  const stores = new CacheStores({
    stateDir: '/state',
    env: { T_ACCESS: 'AKIDT', T_SECRET: secret },
    s3Client: async (c) => {
      configs.push(c);
      const client = new S3Client(c);
      clients.push(client);
      return client;
    },
  });
  t.teardown(() => stores.destroy());
  const req = { connector, job, shortToken: 'abcdefghi', info: ssh };
  const missing = stores.forJob({ ...req, fleet: fleetSpec({ name: 'f', cache: s3Cache('T_MISSING') }) });
  await t.rejects(missing, /fleet f cache\.s3\.secret_key: environment variable T_MISSING is not set/);

  const fleet = fleetSpec({ name: 'f', cache: s3Cache('T_SECRET') });
  const store = await stores.forJob({ ...req, fleet });
  await stores.forJob({ ...req, fleet });
  t.equal(configs.length, 1, 'the client is reused for the next job');
  t.same(configs[0]?.credentials, { accessKeyId: 'AKIDT', secretAccessKey: secret });
  t.equal(store.where('k'), `http://127.0.0.1:9/b/p/runner/abcdefghi/project/${job.job_info.project_id}/k`);
  t.notOk(store.where('k').includes(secret));
  await stores.forJob({
    ...req,
    fleet: fleetSpec({ name: 'f', cache: { ...s3Cache('T_SECRET'), path: 'q' } }),
  });
  t.equal(configs.length, 2, 'a changed cache block gets a new client');
});
