// Optimizers with PyTorch's exact update rules, parameter groups and lr schedules.
export {
  Optimizer,
  type GroupBase,
  type ParamGroup,
  type ParamGroupInput,
  type ParamsInput,
  type ParamState,
  type StateValue,
  type OptimizerStateDict,
} from './optimizer.js';
export { SGD, type SGDOptions } from './sgd.js';
export { AdamW, type AdamWOptions } from './adamw.js';
export { paramGroupsNoDecay, type ParamGroupSpec, type NoDecayOptions } from './param-groups.js';
export {
  LRScheduler,
  CosineWarmupLR,
  StepLR,
  type SchedulerStateDict,
  type SchedulerTiming,
  type CosineOptions,
  type StepOptions,
} from './lr-scheduler.js';
export { createOptimizer, type OptimizerName, type OptimizerSpec, type OptimizerGroup } from './factory.js';
