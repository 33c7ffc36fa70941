export {
  createStaticProvider,
  sshBannerProbe,
  staticInstanceIds,
  type HostProbe,
  type StaticProviderOptions,
} from './static-provider.js';
