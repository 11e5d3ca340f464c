// Linear, Identity and Flatten.
import * as T from '../../tensor/index.js';
import { Module } from '../module.js';
import { defaultLayerInit } from '../init.js';

export class Linear extends Module {
  declare readonly weight: T.Tensor;
  declare readonly bias: T.Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: { bias?: boolean } = {},
  ) {
    super();
    for (const [v, what] of [
      [inFeatures, 'inFeatures'],
      [outFeatures, 'outFeatures'],
    ] as const) {
      if (!Number.isInteger(v) || v < 0)
        throw new RangeError(`Expected a non-negative integer for Linear ${what} but received ${v}`);
    }
    const w = this.registerParameter('weight', T.empty([outFeatures, inFeatures]));
    const b = this.registerParameter('bias', (options.bias ?? true) ? T.empty([outFeatures]) : null);
    defaultLayerInit(w, b);
  }

  override forward(x: T.Tensor): T.Tensor {
    return T.F.linear(x, this.weight, this.bias);
  }
}

/** Returns its input unchanged (placeholder for an absent layer, e.g. a removed classifier). */
export class Identity extends Module {
  override forward(x: T.Tensor): T.Tensor {
    return x;
  }
}

export class Flatten extends Module {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }

  override forward(x: T.Tensor): T.Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
}
