/**
 * Child process for the crash tests: adds one sandbox to group `ci` under the state directory and
 * SIGKILLs itself right after the named creation step, as a power cut or `kill -9` of apply would.
 * Usage: node crash-child.ts <stateDir> <step>
 */
import { createLocalProvider, type CreateStep } from '../../../src/providers/local/index.js';

const [stateDir, crashAt] = process.argv.slice(2) as [string, CreateStep];
const provider = createLocalProvider({
  stateDir,
  onCreateStep: (step) => {
    if (step === crashAt) process.kill(process.pid, 'SIGKILL');
  },
});
await provider.increase({ fleet: 'ci', provider: 'local', name: 'ci' }, 1);
// Reaching this line means the step never came: the parent sees exit code 3, not SIGKILL.
process.exit(3);
