/** The embedded `local` provider: one sandbox directory per instance under the state directory. */
export {
  createLocalProvider,
  type CreateStep,
  type LocalInstanceFile,
  type LocalProviderOptions,
} from './local-provider.js';
export { SandboxPaths } from './sandbox-paths.js';
