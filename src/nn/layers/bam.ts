// BAM, the Bottleneck Attention Module (Park et al. 2018), with the state-dict
// names of the authors' code (Jongchan/attention-module MODELS/bam.py):
//   channel_att.gate_c.{gate_c_fc_0, gate_c_bn_1, gate_c_fc_final}
//   spatial_att.gate_s.{gate_s_conv_reduce0, gate_s_bn_reduce0, gate_s_conv_di_<i>, gate_s_bn_di_<i>, gate_s_conv_final}
// out = x * (1 + sigmoid(Mc(x) + Ms(x))), the paper's sum; combine: 'product' gives
// the authors' code (sigmoid(Mc * Ms)), for their released weights.
// Unlike that code (avg_pool2d with a kernel of the input height, which needs
// square inputs) the channel gate pools globally, so any input size works.
// Registered as attention 'bam' (the ResNet family places it between stages).
import * as T from '../../tensor/index.js';
import { Module } from '../module.js';
import { Conv2d } from './conv.js';
import { Linear } from './linear.js';
import { BatchNorm2d } from './norm.js';
import { BatchNorm1d } from './batchnorm1d.js';
import { ModuleDict } from './containers.js';
import { registerAttn } from './create-attn.js';

export type BamCombine = 'sum' | 'product';
export interface BamOptions {
  reductionRatio?: number;
  dilationConvNum?: number;
  dilation?: number;
  combine?: BamCombine;
}

/** Children run in insertion order under their own names (PyTorch's Sequential with add_module); ReLU after each BN. */
class GateChain extends ModuleDict {
  override forward(x: T.Tensor): T.Tensor {
    let cur = x;
    for (const [, m] of this.entries()) {
      const next = m.forward(cur);
      if (cur !== x) cur.dispose();
      cur = m instanceof BatchNorm2d ? next.relu_() : next;
    }
    return cur;
  }
}

export class ChannelGate extends Module {
  readonly gate_c: GateChain;
  constructor(channels: number, reductionRatio = 16) {
    super();
    const rd = Math.floor(channels / reductionRatio);
    this.gate_c = new GateChain({
      gate_c_fc_0: new Linear(channels, rd),
      gate_c_bn_1: new BatchNorm1d(rd),
      gate_c_fc_final: new Linear(rd, channels),
    });
  }
  /** [N, C, 1, 1] channel logits. */
  override forward(x: T.Tensor): T.Tensor {
    return T.tidy(() => this.gate_c.forward(x.mean([2, 3])).reshape([x.shape[0]!, -1, 1, 1]));
  }
}

export class SpatialGate extends Module {
  readonly gate_s: GateChain;
  constructor(channels: number, reductionRatio = 16, dilationConvNum = 2, dilation = 4) {
    super();
    const rd = Math.floor(channels / reductionRatio);
    this.gate_s = new GateChain({
      gate_s_conv_reduce0: new Conv2d(channels, rd, 1),
      gate_s_bn_reduce0: new BatchNorm2d(rd),
    });
    for (let i = 0; i < dilationConvNum; i++) {
      this.gate_s.set(`gate_s_conv_di_${i}`, new Conv2d(rd, rd, 3, { padding: dilation, dilation }));
      this.gate_s.set(`gate_s_bn_di_${i}`, new BatchNorm2d(rd));
    }
    this.gate_s.set('gate_s_conv_final', new Conv2d(rd, 1, 1));
  }
  /** [N, 1, H, W] spatial logits. */
  override forward(x: T.Tensor): T.Tensor {
    return this.gate_s.forward(x);
  }
}

export class BAM extends Module {
  readonly channel_att: ChannelGate;
  readonly spatial_att: SpatialGate;
  readonly combine: BamCombine;
  constructor(
    readonly channels: number,
    o: BamOptions = {},
  ) {
    super();
    this.combine = o.combine ?? 'sum';
    if (this.combine !== 'sum' && this.combine !== 'product')
      throw new TypeError(`Expected 'sum' or 'product' for BAM combine but received ${JSON.stringify(o.combine)}`);
    const r = o.reductionRatio ?? 16;
    if (!Number.isInteger(channels) || channels < r)
      throw new RangeError(
        `Error in BAM: channels (${channels}) must be an integer of at least the reduction ratio (${r})`,
      );
    this.channel_att = new ChannelGate(channels, r);
    this.spatial_att = new SpatialGate(channels, r, o.dilationConvNum ?? 2, o.dilation ?? 4);
  }
  override forward(x: T.Tensor): T.Tensor {
    return T.tidy(() => {
      // x * (1 + att) as x * att + x: the sigmoid's output stays intact for its backward.
      const c = this.channel_att.forward(x),
        s = this.spatial_att.forward(x);
      const att = T.F.sigmoid(this.combine === 'sum' ? c.add(s) : c.mul(s));
      return x.mul(att).add_(x);
    });
  }
}

registerAttn(
  'bam',
  (channels, o) =>
    new BAM(channels, {
      reductionRatio: typeof o?.reductionRatio === 'number' ? o.reductionRatio : undefined,
      dilationConvNum: typeof o?.dilationConvNum === 'number' ? o.dilationConvNum : undefined,
      dilation: typeof o?.dilation === 'number' ? o.dilation : undefined,
      combine: o?.combine as BamCombine | undefined,
    }),
);
