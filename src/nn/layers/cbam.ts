// CBAM (Woo et al. 2018) in timm's layout and names (layers/cbam.py CbamModule):
// channel attention `channel` (shared MLP fc1/fc2 as 1x1 convs over the average-
// and max-pooled features, summed, sigmoid) then spatial attention `spatial`
// (7x7 conv `conv.conv` + BN `conv.bn` over the [mean, max] channel maps, sigmoid).
// timm's MLP has no bias; `mlpBias: true` gives the paper's MLP (its 28.09M
// ResNet-50 count). Registered as attention 'cbam'.
import * as T from '../../tensor/index.js';
import { Module } from '../module.js';
import { Conv2d } from './conv.js';
import { BatchNorm2d } from './norm.js';
import { registerAttn } from './create-attn.js';
import { makeDivisible } from './se.js';

export interface CbamOptions {
  rdRatio?: number;
  /** Rounding divisor of the reduced width (timm's CBAM default 1: plain channels * rdRatio). */
  rdDivisor?: number;
  spatialKernelSize?: number;
  mlpBias?: boolean;
}

export class ChannelAttn extends Module {
  readonly fc1: Conv2d;
  readonly fc2: Conv2d;

  constructor(channels: number, o: CbamOptions = {}) {
    super();
    const rd = makeDivisible(channels * (o.rdRatio ?? 1 / 16), o.rdDivisor ?? 1, undefined, 0);
    this.fc1 = new Conv2d(channels, rd, 1, { bias: o.mlpBias ?? false });
    this.fc2 = new Conv2d(rd, channels, 1, { bias: o.mlpBias ?? false });
  }

  private mlp(p: T.Tensor): T.Tensor {
    const h = this.fc1.forward(p).relu_();
    const out = this.fc2.forward(h);
    h.dispose();
    return out;
  }

  override forward(x: T.Tensor): T.Tensor {
    return T.tidy(() => x.mul(T.F.sigmoid(this.mlp(x.mean([2, 3], true)).add_(this.mlp(x.amax([2, 3], true))))));
  }
}

/** timm's ConvNormAct without activation: `conv` (no bias) then `bn`. */
class ConvNorm extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  constructor(inC: number, outC: number, k: number) {
    super();
    this.conv = new Conv2d(inC, outC, k, { padding: Math.floor(k / 2), bias: false });
    this.bn = new BatchNorm2d(outC);
  }
  override forward(x: T.Tensor): T.Tensor {
    const c = this.conv.forward(x);
    const out = this.bn.forward(c);
    c.dispose();
    return out;
  }
}

export class SpatialAttn extends Module {
  readonly conv: ConvNorm;
  constructor(kernelSize = 7) {
    super();
    this.conv = new ConvNorm(2, 1, kernelSize);
  }
  override forward(x: T.Tensor): T.Tensor {
    return T.tidy(() => x.mul(T.F.sigmoid(this.conv.forward(T.F.cat([x.mean(1, true), x.amax(1, true)], 1)))));
  }
}

export class CbamModule extends Module {
  readonly channel: ChannelAttn;
  readonly spatial: SpatialAttn;
  constructor(channels: number, o: CbamOptions = {}) {
    super();
    this.channel = new ChannelAttn(channels, o);
    this.spatial = new SpatialAttn(o.spatialKernelSize ?? 7);
  }
  override forward(x: T.Tensor): T.Tensor {
    const c = this.channel.forward(x);
    const out = this.spatial.forward(c);
    c.dispose();
    return out;
  }
}

registerAttn(
  'cbam',
  (channels, o) =>
    new CbamModule(channels, {
      rdRatio: typeof o?.rdRatio === 'number' ? o.rdRatio : undefined,
      rdDivisor: typeof o?.rdDivisor === 'number' ? o.rdDivisor : undefined,
      spatialKernelSize: typeof o?.spatialKernelSize === 'number' ? o.spatialKernelSize : undefined,
      mlpBias: typeof o?.mlpBias === 'boolean' ? o.mlpBias : undefined,
    }),
);
