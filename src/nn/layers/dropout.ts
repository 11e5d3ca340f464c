// Dropout and stochastic depth; both are identities in eval mode.
import * as T from '../../tensor/index.js';
import { Module } from '../module.js';

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Expected a probability in [0, 1] for Dropout p but received ${p}`);
  }
  override forward(x: T.Tensor): T.Tensor {
    return this.training && this.p > 0 ? T.F.dropout(x, this.p, true) : x;
  }
}

/** Drops a whole residual branch per sample with probability p (timm's DropPath). */
export class DropPath extends Module {
  constructor(readonly p = 0) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`Expected a probability in [0, 1) for DropPath p but received ${p}`);
  }
  override forward(x: T.Tensor): T.Tensor {
    return T.F.dropPath(x, this.p, this.training);
  }
}
