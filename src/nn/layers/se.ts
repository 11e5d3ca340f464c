// Squeeze-and-Excitation (Hu et al. 2018) in timm's layout (layers/squeeze_excite.py
// SEModule): global average -> 1x1 conv fc1 (bias) -> ReLU -> 1x1 conv fc2 (bias)
// -> sigmoid gate on the channels. Registered as attention 'se'.
import * as T from '../../tensor/index.js';
import { Module } from '../module.js';
import { Conv2d } from './conv.js';
import { registerAttn } from './create-attn.js';

/** timm's make_divisible: round to a multiple of divisor, never below minValue (default divisor) nor below roundLimit * v. */
export function makeDivisible(v: number, divisor = 8, minValue?: number, roundLimit = 0.9): number {
  const min = minValue ?? divisor;
  let out = Math.max(min, Math.floor((v + divisor / 2) / divisor) * divisor);
  if (out < roundLimit * v) out += divisor;
  return out;
}

export interface SEOptions {
  /** Reduced width as a fraction of the channels (default 1/16). */
  rdRatio?: number;
  /** Rounding divisor of the reduced width (default 8, as timm's SEModule). */
  rdDivisor?: number;
  /** Bias in fc1/fc2 (default true). */
  bias?: boolean;
}

export class SEModule extends Module {
  readonly fc1: Conv2d;
  readonly fc2: Conv2d;

  constructor(
    readonly channels: number,
    o: SEOptions = {},
  ) {
    super();
    const rd = makeDivisible(channels * (o.rdRatio ?? 1 / 16), o.rdDivisor ?? 8, undefined, 0);
    this.fc1 = new Conv2d(channels, rd, 1, { bias: o.bias ?? true });
    this.fc2 = new Conv2d(rd, channels, 1, { bias: o.bias ?? true });
  }

  override forward(x: T.Tensor): T.Tensor {
    const s = x.mean([2, 3], true);
    const a = this.fc1.forward(s).relu_();
    const b = this.fc2.forward(a);
    const gate = T.F.sigmoid(b);
    const out = x.mul(gate);
    s.dispose();
    a.dispose();
    b.dispose();
    gate.dispose();
    return out;
  }
}

registerAttn(
  'se',
  (channels, o) =>
    new SEModule(channels, {
      rdRatio: typeof o?.rdRatio === 'number' ? o.rdRatio : undefined,
      rdDivisor: typeof o?.rdDivisor === 'number' ? o.rdDivisor : undefined,
      bias: typeof o?.bias === 'boolean' ? o.bias : undefined,
    }),
);
