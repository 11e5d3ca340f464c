// An optimizer by name: the one place a config's optimizer becomes an object, typed as the base class
// that schedulers and training loops take.
import { AdamW } from './adamw.js';
import type { GroupBase, Optimizer, ParamGroupInput } from './optimizer.js';
import { SGD } from './sgd.js';

export type OptimizerName = 'sgd' | 'adamw';

export interface OptimizerSpec {
  name: OptimizerName;
  lr: number;
  weightDecay: number;
  /** SGD only. */
  momentum?: number;
  /** SGD only. */
  nesterov?: boolean;
}

/** Parameter groups may carry their own lr and weight decay (layer decay, no decay on norms). */
export type OptimizerGroup = ParamGroupInput<GroupBase & { weightDecay: number }>;

export function createOptimizer(groups: readonly OptimizerGroup[], spec: OptimizerSpec): Optimizer<GroupBase> {
  switch (spec.name) {
    case 'sgd':
      return new SGD(groups, {
        lr: spec.lr,
        momentum: spec.momentum ?? 0,
        nesterov: spec.nesterov ?? false,
        weightDecay: spec.weightDecay,
      });
    case 'adamw':
      return new AdamW(groups, { lr: spec.lr, weightDecay: spec.weightDecay });
    default:
      throw new RangeError(
        `unknown optimizer '${String((spec as { name: unknown }).name)}' (expected 'sgd' or 'adamw')`,
      );
  }
}
