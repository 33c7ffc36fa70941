/**
 * An in-process AWS-compatible endpoint (Auto Scaling, EC2, EC2 Instance Connect) for end-to-end
 * tests of the AWS provider through the real SDK clients. See server.ts.
 */
export {
  FakeAws,
  startFakeAws,
  type AwsServiceName,
  type FakeAwsCall,
  type FakeAwsOptions,
  type FaultMatch,
} from './server.js';
export { interruptSpot, type GroupView, type SeedGroupSpec } from './seed.js';
export type { FakeGroup, FakeInstance, World, WorldOptions } from './world.js';
