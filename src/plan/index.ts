/**
 * The pure planner: policy selection, the capacity function, desired-vs-observed planning and plan
 * rendering. Nothing here performs I/O or reads the clock.
 */
export { policyAt, NO_POLICY, type PolicyInForce } from './policy.js';
export {
  decideCapacity,
  type CapacityDecision,
  type CapacityInput,
  type CapacityInstance,
  type CapacityInstanceState,
} from './capacity.js';
export { mergeInstances, UNHEALTHY_AFTER_FAILURES } from './instances.js';
export { planFleets, type FleetConstraints, type PlanInput } from './planner.js';
export { diffSpecs, REPLACEMENT_PATHS, SENSITIVE_PATHS } from './spec-diff.js';
export { renderPlan, type PlanFormat, type RenderOptions } from './render.js';
