// Pooling layers (no parameters).
import * as T from '../../tensor/index.js';
import { Module } from '../module.js';

type Pair = number | [number, number];

export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly options: { stride?: Pair; padding?: Pair; dilation?: Pair; ceilMode?: boolean } = {},
  ) {
    super();
  }
  override forward(x: T.Tensor): T.Tensor {
    return T.F.maxPool2d(x, this.kernelSize, this.options);
  }
}

export class AvgPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly options: {
      stride?: Pair;
      padding?: Pair;
      ceilMode?: boolean;
      countIncludePad?: boolean;
      divisorOverride?: number;
    } = {},
  ) {
    super();
  }
  override forward(x: T.Tensor): T.Tensor {
    return T.F.avgPool2d(x, this.kernelSize, this.options);
  }
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: Pair) {
    super();
  }
  override forward(x: T.Tensor): T.Tensor {
    return T.F.adaptiveAvgPool2d(x, this.outputSize);
  }
}
