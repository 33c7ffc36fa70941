import t from 'tap';
import { createServer, type Server } from 'node:net';
import {
  createStaticProvider,
  sshBannerProbe,
  staticInstanceIds,
} from '../../../src/providers/static/index.js';
import { fleetSpec } from '../../helpers/fake-state.js';

/** A TCP server on loopback that greets like sshd (or says something else). */
async function listen(greeting: string): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => socket.end(greeting));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : 0 };
}

/** A port on loopback that nothing listens on. */
async function closedPort(): Promise<number> {
  const { server, port } = await listen('');
  await new Promise((resolve) => server.close(resolve));
  return port;
}

t.test('host ids take the connector port when the entry names none', async (t) => {
  t.same(staticInstanceIds(['build-01.example.internal', 'b:2222', '[::1]:22'], 22), [
    'build-01.example.internal:22',
    'b:2222',
    '[::1]:22',
  ]);
  t.throws(() => staticInstanceIds(['a:b:c'], 22), /not host or host:port/);
});

t.test('the probe wants an SSH banner, not just an open port', async (t) => {
  const sshd = await listen('SSH-2.0-OpenSSH_9.2\r\n');
  const http = await listen('HTTP/1.1 400 Bad Request\r\n\r\n');
  t.teardown(() => {
    sshd.server.close();
    http.server.close();
  });
  t.equal(await sshBannerProbe('127.0.0.1', sshd.port, 2000), true);
  t.equal(await sshBannerProbe('127.0.0.1', http.port, 2000), false);
  t.equal(await sshBannerProbe('127.0.0.1', await closedPort(), 2000), false);
});

t.test(
  'observe reports every host, unreachable ones unhealthy with a warning, as fixed capacity',
  async (t) => {
    const sshd = await listen('SSH-2.0-test\r\n');
    t.teardown(() => sshd.server.close());
    const down = await closedPort();
    const spec = fleetSpec({
      name: 'onprem',
      provider: { type: 'static', hosts: [`127.0.0.1:${sshd.port}`, `127.0.0.1:${down}`] },
    });
    const provider = createStaticProvider({
      hosts: [`127.0.0.1:${sshd.port}`, `127.0.0.1:${down}`],
      connectorFor: () => spec.connector,
      probeTimeoutMs: 2000,
    });
    const ref = { fleet: 'onprem', provider: 'static' as const, name: 'onprem' };
    const [group] = await provider.observe([ref]);
    t.equal(group?.fixedCapacity, true);
    t.same(
      group?.instances.map((i) => [i.id, i.state, i.healthy]),
      [
        [`127.0.0.1:${sshd.port}`, 'running', true],
        [`127.0.0.1:${down}`, 'running', false],
      ],
    );
    t.match(group?.diagnostics, [{ severity: 'warning', code: 'STATIC_HOST_UNREACHABLE' }]);
    t.match(group?.diagnostics[0]?.message, new RegExp(`127\\.0\\.0\\.1:${down}`));

    t.equal(await provider.increase(ref, 3), 0, 'a fixed fleet cannot grow');
    t.same(await provider.decrease(ref, [`127.0.0.1:${down}`]), [`127.0.0.1:${down}`]);
    const [again] = await provider.observe([ref]);
    t.equal(again?.instances.length, 2, 'releasing a host does not remove it');
    t.equal(await provider.heartbeat(ref, `127.0.0.1:${sshd.port}`), true);
  },
);

t.test('connectInfo uses the configured user and key, and refuses unknown hosts', async (t) => {
  const spec = fleetSpec({
    name: 'onprem',
    connector: { username: 'ci', key_path: '/keys/id_ed25519', use_static_credentials: true },
  });
  const provider = createStaticProvider({
    hosts: ['build-01:2222'],
    connectorFor: () => spec.connector,
    readKey: async (path) => `KEY FROM ${path}`,
  });
  const ref = { fleet: 'onprem', provider: 'static' as const, name: 'onprem' };
  const info = await provider.connectInfo(ref, 'build-01:2222');
  t.same(info, {
    id: 'build-01:2222',
    address: 'build-01',
    port: 2222,
    username: 'ci',
    protocol: 'ssh',
    privateKey: 'KEY FROM /keys/id_ed25519',
  });
  await t.rejects(provider.connectInfo(ref, 'elsewhere:22'), /not a host of static fleet onprem/);

  const noKey = createStaticProvider({ hosts: ['h'], connectorFor: () => fleetSpec({}).connector });
  await t.rejects(noKey.connectInfo(ref, 'h:22'), { code: 'CONFIG_INVALID', hint: /key_path/ });
});
