// Normalisation layers: BatchNorm2d (running statistics as buffers), LayerNorm, GroupNorm.
import * as T from '../../tensor/index.js';
import { Module } from '../module.js';

export interface BatchNormOptions {
  eps?: number;
  /** Running-stat update factor; null: cumulative average over batches (PyTorch's momentum=None). */
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
}

export class BatchNorm2d extends Module {
  declare readonly weight: T.Tensor | null;
  declare readonly bias: T.Tensor | null;
  declare readonly running_mean: T.Tensor | null;
  declare readonly running_var: T.Tensor | null;
  declare readonly num_batches_tracked: T.Tensor | null;
  readonly eps: number;
  readonly momentum: number | null;
  /**
   * Training-mode forward over the batch of every data-parallel rank (SyncBatchNorm; set by the distributed
   * package's convertSyncBatchNorm), given the running-stat factor. Null: statistics of this replica's batch.
   */
  syncForward: ((bn: BatchNorm2d, x: T.Tensor, factor: number) => T.Tensor) | null = null;

  constructor(
    readonly numFeatures: number,
    o: BatchNormOptions = {},
  ) {
    super();
    if (!Number.isInteger(numFeatures) || numFeatures < 1)
      throw new RangeError(`Expected a positive integer for BatchNorm2d numFeatures but received ${numFeatures}`);
    this.eps = o.eps ?? 1e-5;
    this.momentum = o.momentum === undefined ? 0.1 : o.momentum;
    const affine = o.affine ?? true;
    this.registerParameter('weight', affine ? T.ones([numFeatures]) : null);
    this.registerParameter('bias', affine ? T.zeros([numFeatures]) : null);
    const track = o.trackRunningStats ?? true;
    this.registerBuffer('running_mean', track ? T.zeros([numFeatures]) : null);
    this.registerBuffer('running_var', track ? T.ones([numFeatures]) : null);
    this.registerBuffer('num_batches_tracked', track ? T.zeros([], { dtype: 'int64' }) : null, { optional: true });
  }

  override forward(x: T.Tensor): T.Tensor {
    if (x.ndim !== 4)
      throw new RangeError(`Error in BatchNorm2d: expected a 4-d input but received shape [${x.shape.join(', ')}]`);
    let factor = this.momentum ?? 0;
    const nbt = this.num_batches_tracked;
    if (this.training && nbt) {
      T.noGrad(() => nbt.add_(1));
      if (this.momentum === null) factor = 1 / nbt.item();
    }
    if (this.training && this.syncForward) return this.syncForward(this, x, factor);
    // Batch statistics in training; running statistics (when tracked) in eval.
    const useBatchStats = this.training || this.running_mean === null;
    return T.F.batchNorm(x, this.running_mean, this.running_var, {
      weight: this.weight,
      bias: this.bias,
      training: useBatchStats,
      momentum: factor,
      eps: this.eps,
    });
  }
}

export class LayerNorm extends Module {
  declare readonly weight: T.Tensor | null;
  declare readonly bias: T.Tensor | null;
  readonly normalizedShape: number[];

  constructor(
    normalizedShape: number | readonly number[],
    readonly eps = 1e-5,
    elementwiseAffine = true,
  ) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.registerParameter('weight', elementwiseAffine ? T.ones(this.normalizedShape) : null);
    this.registerParameter('bias', elementwiseAffine ? T.zeros(this.normalizedShape) : null);
  }

  override forward(x: T.Tensor): T.Tensor {
    return T.F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

export class GroupNorm extends Module {
  declare readonly weight: T.Tensor | null;
  declare readonly bias: T.Tensor | null;

  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    readonly eps = 1e-5,
    affine = true,
  ) {
    super();
    if (!Number.isInteger(numGroups) || numGroups < 1 || numChannels % numGroups !== 0) {
      throw new RangeError(
        `Error in GroupNorm: numChannels (${numChannels}) must be divisible by numGroups (${numGroups})`,
      );
    }
    this.registerParameter('weight', affine ? T.ones([numChannels]) : null);
    this.registerParameter('bias', affine ? T.zeros([numChannels]) : null);
  }

  override forward(x: T.Tensor): T.Tensor {
    return T.F.groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
}
