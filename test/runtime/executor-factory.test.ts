/** executorFor: where each executor puts a job's project on an instance and in a sandbox. */
import t from 'tap';
import type { Connector } from '../../src/runtime/connectors/connector.js';
import { executorFor, remoteRunnerBuildsDir, REMOTE_BUILDS_DIR } from '../../src/runtime/executor-factory.js';
import type { Executor } from '../../src/runtime/executors/executor.js';
import type { Fleet } from '../../src/model/fleet.js';
import type { ConnectInfo } from '../../src/providers/provider.js';
import { exampleJob } from '../../src/devtools/coordinator/example-job.js';
import { systemTime } from '../../src/util/time.js';

/**
 * Answers prepare's one probe (login shell not bash 4+, which shell, which host; shell-session.ts);
 * nothing else is run before a stage.
 */
const connector = {
  description: 'test instance',
  exec: async (_cmd: string, o: { onStdout?: (c: Buffer) => void }) => {
    o.onStdout?.(Buffer.from('\nsh\nhost-1\n'));
    return { exitCode: 0 };
  },
} as unknown as Connector;
const sshInfo: ConnectInfo = { id: 'i-1', protocol: 'ssh', address: '127.0.0.1', port: 22 } as ConnectInfo;
const localInfo: ConnectInfo = { id: 'l-1', protocol: 'local', workdir: '/sandbox/l-1' } as ConnectInfo;
const instanceFleet = { name: 'f', executor: 'instance' } as unknown as Fleet;

/** The project directory an instance executor chooses for a job (its layout, after prepare). */
async function projectDir(executor: Executor): Promise<string> {
  const job = exampleJob(7, { projectName: 'app', serverUrl: 'http://127.0.0.1:1' });
  await executor.prepare(
    job,
    { write: () => undefined, section: async (_n, fn) => fn() },
    AbortSignal.timeout(5000),
  );
  return executor.stageEnvironment('step_script').layout.projectDir;
}

t.test('two fleets on one SSH host never share a project directory', async (t) => {
  const a = await projectDir(executorFor(instanceFleet, sshInfo, connector, 0, systemTime, 'aaaaaaaaa'));
  const b = await projectDir(executorFor(instanceFleet, sshInfo, connector, 0, systemTime, 'bbbbbbbbb'));
  t.match(a, new RegExp(`^${REMOTE_BUILDS_DIR}/aaaaaaaaa/0/`));
  t.match(b, new RegExp(`^${REMOTE_BUILDS_DIR}/bbbbbbbbb/0/`));
  t.not(a, b);
});

t.test('a local sandbox is the fleet’s own: no runner segment', async (t) => {
  const dir = await projectDir(executorFor(instanceFleet, localInfo, connector, 1, systemTime, 'aaaaaaaaa'));
  t.match(dir, /^\/sandbox\/l-1\/builds\/1\//);
});

t.test('the docker executor mounts its runner’s own directory of the instance', async (t) => {
  t.equal(remoteRunnerBuildsDir('aaaaaaaaa'), `${REMOTE_BUILDS_DIR}/aaaaaaaaa`);
  t.equal(remoteRunnerBuildsDir('..'), `${REMOTE_BUILDS_DIR}/runner`, 'never leaves the root');
  t.equal(remoteRunnerBuildsDir('a/../b'), `${REMOTE_BUILDS_DIR}/ab`);
  t.equal(remoteRunnerBuildsDir(''), `${REMOTE_BUILDS_DIR}/runner`);
});
