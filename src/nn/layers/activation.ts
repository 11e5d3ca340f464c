// Activation layers and the string factory that model families use to pick one.
import * as T from '../../tensor/index.js';
import { Module } from '../module.js';
import { Identity } from './linear.js';

export class ReLU extends Module {
  /** inplace: overwrite the input (returns the same tensor), as torchvision's ReLU(inplace=True). */
  constructor(readonly inplace = false) {
    super();
  }
  override forward(x: T.Tensor): T.Tensor {
    return this.inplace ? x.relu_() : T.F.relu(x);
  }
}
export class SiLU extends Module {
  override forward(x: T.Tensor): T.Tensor {
    return T.F.silu(x);
  }
}
export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }
  override forward(x: T.Tensor): T.Tensor {
    return T.F.gelu(x, this.approximate);
  }
}
export class Hardswish extends Module {
  override forward(x: T.Tensor): T.Tensor {
    return T.F.hardswish(x);
  }
}
export class Sigmoid extends Module {
  override forward(x: T.Tensor): T.Tensor {
    return T.F.sigmoid(x);
  }
}

export type ActName = 'relu' | 'silu' | 'swish' | 'gelu' | 'gelu_tanh' | 'hardswish' | 'sigmoid' | 'identity';

const ACTS: Record<ActName, () => Module> = {
  relu: () => new ReLU(true),
  silu: () => new SiLU(),
  swish: () => new SiLU(),
  gelu: () => new GELU(),
  gelu_tanh: () => new GELU('tanh'),
  hardswish: () => new Hardswish(),
  sigmoid: () => new Sigmoid(),
  identity: () => new Identity(),
};

/** An activation layer by name (timm's create_act_layer). */
export function createAct(name: ActName): Module {
  const f = ACTS[name];
  if (!f)
    throw new TypeError(`Expected an activation name (${Object.keys(ACTS).join(', ')}) but received ${String(name)}`);
  return f();
}
