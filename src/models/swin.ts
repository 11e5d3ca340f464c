// Swin Transformer (v1) in torchvision's layout (torchvision/models/swin_transformer.py,
// 0.14: `swin_t`), so torchvision's weights load without renaming: features.0
// patch embedding (conv + permute + LayerNorm), then stages of
// SwinTransformerBlocks alternating with PatchMerging, norm, head. Activations
// are channels-last [B, H, W, C] inside; feature maps are padded to window
// multiples, so any input size works (224 is the size of the weights).
// Order as in timm: helpers, blocks, model, create function, configs, variants.
import * as T from '../tensor/index.js';
import { Module, pipe } from '../nn/module.js';
import { Conv2d } from '../nn/layers/conv.js';
import { LayerNorm } from '../nn/layers/norm.js';
import { Linear, Identity } from '../nn/layers/linear.js';
import { GELU } from '../nn/layers/activation.js';
import { AdaptiveAvgPool2d } from '../nn/layers/pooling.js';
import { Dropout, DropPath } from '../nn/layers/dropout.js';
import { Sequential } from '../nn/layers/containers.js';
import { zeros_ } from '../nn/init.js';
import { ClassifierModel, IMAGENET_MEAN, IMAGENET_STD, type ModelCfg } from './model.js';
import { registerModel, type CreateModelOptions } from './registry.js';
import { checkHead, checkNumClasses, createClassifier, type HeadType } from './head.js';

// --- helpers ---------------------------------------------------------------------------

/** trunc_normal_(std) with PyTorch's absolute bounds [-2, 2] (at std 0.02 that cut is ~100 std away). */
function truncNormal_(t: T.Tensor, std: number): void {
  T.noGrad(() =>
    T.tidy(() => {
      t.normal_(0, std);
      t.copy_(t.clamp(-2, 2));
    }),
  );
}

/**
 * torch.roll over one dim, written as narrow + cat so that ONNX export maps it
 * (same values; roll has no mapping in serve/onnx).
 */
function rollDim(x: T.Tensor, shift: number, dim: number): T.Tensor {
  const n = x.shape[dim]!;
  const s = ((shift % n) + n) % n;
  if (s === 0) return x;
  const a = x.narrow(dim, n - s, s),
    b = x.narrow(dim, 0, n - s);
  const out = T.cat([a, b], dim);
  a.dispose();
  b.dispose();
  return out;
}

/** Python's slice(start, end) bounds on a dim of size n (negative from the end; -0 is 0). */
function pySlice(start: number, end: number | null, n: number): [number, number] {
  const norm = (v: number): number => Math.min(n, Math.max(0, v < 0 ? v + n : v));
  return [norm(start), end === null ? n : norm(end)];
}

/**
 * The shifted-window mask [nW, 1, N, N]: -100 between tokens from different
 * regions of the rolled map, built exactly as torchvision does (same slices,
 * same overwrite order) so edge cases such as a zero shift on one axis match.
 */
function shiftMask(padH: number, padW: number, ws: [number, number], shift: [number, number]): T.Tensor {
  const region = new Int32Array(padH * padW);
  const hs: [number, number | null][] = [
    [0, -ws[0]],
    [-ws[0], -shift[0]],
    [-shift[0], null],
  ];
  const wsl: [number, number | null][] = [
    [0, -ws[1]],
    [-ws[1], -shift[1]],
    [-shift[1], null],
  ];
  let count = 0;
  for (const [h0, h1] of hs) {
    for (const [w0, w1] of wsl) {
      const [ha, hb] = pySlice(h0, h1, padH),
        [wa, wb] = pySlice(w0, w1, padW);
      for (let i = ha; i < hb; i++) for (let j = wa; j < wb; j++) region[i * padW + j] = count;
      count++;
    }
  }
  const nh = padH / ws[0],
    nw = padW / ws[1],
    n = ws[0] * ws[1];
  const mask = new Float32Array(nh * nw * n * n);
  const labels = new Int32Array(n);
  for (let wi = 0; wi < nh; wi++) {
    for (let wj = 0; wj < nw; wj++) {
      for (let a = 0; a < ws[0]; a++)
        for (let b = 0; b < ws[1]; b++) labels[a * ws[1] + b] = region[(wi * ws[0] + a) * padW + wj * ws[1] + b]!;
      const base = (wi * nw + wj) * n * n;
      for (let p = 0; p < n; p++)
        for (let q = 0; q < n; q++) if (labels[p] !== labels[q]) mask[base + p * n + q] = -100;
    }
  }
  return T.tensor(mask, [nh * nw, 1, n, n]);
}

// --- blocks ----------------------------------------------------------------------------

/** A module that permutes dimensions (torchvision.ops.misc.Permute; no parameters). */
export class Permute extends Module {
  constructor(readonly dims: readonly number[]) {
    super();
  }
  override forward(x: T.Tensor): T.Tensor {
    return x.permute(this.dims);
  }
}

/** Window multi-head self-attention with relative position bias; shifted windows when shiftSize > 0. */
export class ShiftedWindowAttention extends Module {
  declare readonly relative_position_bias_table: T.Tensor;
  declare readonly relative_position_index: T.Tensor;
  readonly qkv: Linear;
  readonly proj: Linear;

  constructor(
    readonly dim: number,
    readonly windowSize: [number, number],
    readonly shiftSize: [number, number],
    readonly numHeads: number,
    readonly attentionDropout = 0,
    readonly dropout = 0,
  ) {
    super();
    if (dim % numHeads !== 0)
      throw new RangeError(`Error in ShiftedWindowAttention: dim (${dim}) must be divisible by numHeads (${numHeads})`);
    this.qkv = new Linear(dim, dim * 3);
    this.proj = new Linear(dim, dim);
    const [wh, ww] = windowSize;
    const table = this.registerParameter(
      'relative_position_bias_table',
      T.zeros([(2 * wh - 1) * (2 * ww - 1), numHeads]),
    );
    truncNormal_(table, 0.02);
    // index[p, q] of the table row for tokens p, q of a window (torchvision's define_relative_position_index).
    const n = wh * ww;
    const index = new BigInt64Array(n * n);
    for (let p = 0; p < n; p++) {
      for (let q = 0; q < n; q++) {
        const dh = Math.floor(p / ww) - Math.floor(q / ww) + wh - 1;
        const dw = (p % ww) - (q % ww) + ww - 1;
        index[p * n + q] = BigInt(dh * (2 * ww - 1) + dw);
      }
    }
    this.registerBuffer('relative_position_index', T.tensor(index, [n * n]));
  }

  /** [heads, N, N] bias gathered from the table. */
  relativePositionBias(): T.Tensor {
    const n = this.windowSize[0] * this.windowSize[1];
    return T.tidy(() =>
      this.relative_position_bias_table
        .index(this.relative_position_index)
        .view([n, n, -1])
        .permute([2, 0, 1])
        .contiguous(),
    );
  }

  /** x: [B, H, W, C] -> [B, H, W, C]. */
  override forward(x: T.Tensor): T.Tensor {
    if (x.ndim !== 4 || x.shape[3] !== this.dim)
      throw new RangeError(
        `Error in ShiftedWindowAttention: expected [B, H, W, ${this.dim}] but received [${x.shape.join(', ')}]`,
      );
    return T.tidy(() => {
      const [B, H, W, C] = x.shape as [number, number, number, number];
      const [wh, ww] = this.windowSize;
      const padR = (ww - (W % ww)) % ww,
        padB = (wh - (H % wh)) % wh;
      let h = padR || padB ? T.F.pad(x, [0, 0, 0, padR, 0, padB]) : x;
      const pH = H + padB,
        pW = W + padR;
      // No shift along an axis that a single window covers.
      const shift: [number, number] = [wh >= pH ? 0 : this.shiftSize[0], ww >= pW ? 0 : this.shiftSize[1]];
      const shifted = shift[0] + shift[1] > 0;
      if (shifted) h = rollDim(rollDim(h, -shift[0], 1), -shift[1], 2);

      // Windows, keeping the batch dimension first: [B, nW, N, C].
      const nh = pH / wh,
        nw = pW / ww,
        nW = nh * nw,
        n = wh * ww,
        heads = this.numHeads,
        hd = C / heads;
      const win = h.view([B, nh, wh, nw, ww, C]).permute([0, 1, 3, 2, 4, 5]).reshape([B, nW, n, C]);
      const qkv = this.qkv.forward(win);
      const part = (i: number): T.Tensor =>
        qkv
          .narrow(-1, i * C, C)
          .reshape([B, nW, n, heads, hd])
          .permute([0, 1, 3, 2, 4]);
      const q = part(0).mul(hd ** -0.5),
        k = part(1),
        v = part(2);
      let attn = q.matmul(k.transpose(-2, -1)).add(this.relativePositionBias()); // [B, nW, heads, N, N]
      if (shifted) attn = attn.add(shiftMask(pH, pW, this.windowSize, shift));
      attn = T.F.softmax(attn, -1);
      if (this.attentionDropout > 0 && this.training) attn = T.F.dropout(attn, this.attentionDropout, true);
      let out = attn.matmul(v).permute([0, 1, 3, 2, 4]).reshape([B, nW, n, C]);
      out = this.proj.forward(out);
      if (this.dropout > 0 && this.training) out = T.F.dropout(out, this.dropout, true);

      // Reverse the windows, the shift and the padding.
      out = out.view([B, nh, nw, wh, ww, C]).permute([0, 1, 3, 2, 4, 5]).reshape([B, pH, pW, C]);
      if (shifted) out = rollDim(rollDim(out, shift[0], 1), shift[1], 2);
      if (padR || padB) out = out.slice(1, 0, H).slice(2, 0, W).contiguous();
      return out;
    });
  }
}

/** norm1 -> window attention -> residual; norm2 -> MLP (mlp.0, GELU, mlp.3) -> residual; stochastic depth on both branches. */
export class SwinTransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: ShiftedWindowAttention;
  readonly stochastic_depth: DropPath;
  readonly norm2: LayerNorm;
  readonly mlp: Sequential;

  constructor(
    dim: number,
    numHeads: number,
    windowSize: [number, number],
    shiftSize: [number, number],
    o: { mlpRatio?: number; dropout?: number; attentionDropout?: number; dropPath?: number } = {},
  ) {
    super();
    const dropout = o.dropout ?? 0;
    this.norm1 = new LayerNorm(dim, 1e-5);
    this.attn = new ShiftedWindowAttention(dim, windowSize, shiftSize, numHeads, o.attentionDropout ?? 0, dropout);
    this.stochastic_depth = new DropPath(o.dropPath ?? 0);
    this.norm2 = new LayerNorm(dim, 1e-5);
    const hidden = Math.trunc(dim * (o.mlpRatio ?? 4));
    this.mlp = new Sequential(
      new Linear(dim, hidden),
      new GELU(),
      new Dropout(dropout),
      new Linear(hidden, dim),
      new Dropout(dropout),
    );
  }

  override forward(x: T.Tensor): T.Tensor {
    return T.tidy(() => {
      const a = x.add(pipe(x, this.norm1, this.attn, this.stochastic_depth));
      return a.add(pipe(a, this.norm2, this.mlp, this.stochastic_depth));
    });
  }
}

/** 2x2 neighbourhoods concatenated (x0 x1 x2 x3 order of torchvision), LayerNorm(4C), Linear 4C -> 2C. Odd sizes are padded. */
export class PatchMerging extends Module {
  readonly reduction: Linear;
  readonly norm: LayerNorm;

  constructor(readonly dim: number) {
    super();
    this.reduction = new Linear(4 * dim, 2 * dim, { bias: false });
    this.norm = new LayerNorm(4 * dim, 1e-5);
  }

  override forward(x: T.Tensor): T.Tensor {
    return T.tidy(() => {
      const [, H, W] = x.shape as [number, number, number, number];
      const p = H % 2 || W % 2 ? T.F.pad(x, [0, 0, 0, W % 2, 0, H % 2]) : x;
      const part = (h0: number, w0: number): T.Tensor => p.slice(1, h0, undefined, 2).slice(2, w0, undefined, 2);
      const merged = T.cat([part(0, 0), part(1, 0), part(0, 1), part(1, 1)], -1);
      return pipe(merged, this.norm, this.reduction);
    });
  }
}

// --- model -----------------------------------------------------------------------------

/** Everything a Swin variant is made of. */
export interface SwinArgs {
  /** 'wide': the write-up's wider head (numFeatures -> 4096 -> classes) in the classifier slot. */
  head?: HeadType;
  patchSize: number;
  embedDim: number;
  depths: readonly number[];
  numHeads: readonly number[];
  windowSize: number;
  mlpRatio?: number;
  /** Dropout inside attention output and MLP (torchvision's `dropout`). */
  dropout?: number;
  attentionDropout?: number;
  /** Stochastic depth, rising linearly from 0 to this rate over the blocks (swin_t: 0.2). */
  dropPathRate?: number;
  /** Dropout before the head (not in torchvision; default 0). */
  dropRate?: number;
  numClasses?: number;
  inChans?: number;
}

export class SwinTransformer extends ClassifierModel {
  readonly features: Sequential;
  readonly norm: LayerNorm;
  readonly avgpool: AdaptiveAvgPool2d;
  head: Module;
  readonly numFeatures: number;
  readonly dropRate: number;

  private readonly headType: HeadType;

  constructor(args: SwinArgs) {
    super();
    this.headType = checkHead(args.head);
    const numClasses = args.numClasses ?? 1000;
    checkNumClasses(numClasses);
    if (args.depths.length !== args.numHeads.length)
      throw new RangeError(
        `Error in SwinTransformer: ${args.depths.length} depths but ${args.numHeads.length} head counts`,
      );
    const ps = args.patchSize,
      ws: [number, number] = [args.windowSize, args.windowSize];
    this.features = new Sequential(
      new Sequential(
        new Conv2d(args.inChans ?? 3, args.embedDim, ps, { stride: ps }),
        new Permute([0, 2, 3, 1]),
        new LayerNorm(args.embedDim, 1e-5),
      ),
    );
    const total = args.depths.reduce((a, b) => a + b, 0);
    const dpr = args.dropPathRate ?? 0.2;
    let id = 0;
    args.depths.forEach((depth, i) => {
      const dim = args.embedDim * 2 ** i;
      const stage = new Sequential();
      for (let j = 0; j < depth; j++) {
        stage.append(
          new SwinTransformerBlock(dim, args.numHeads[i]!, ws, j % 2 === 0 ? [0, 0] : [ws[0] >> 1, ws[1] >> 1], {
            mlpRatio: args.mlpRatio,
            dropout: args.dropout,
            attentionDropout: args.attentionDropout,
            dropPath: total > 1 ? (dpr * id++) / (total - 1) : 0,
          }),
        );
      }
      this.features.append(stage);
      if (i < args.depths.length - 1) this.features.append(new PatchMerging(dim));
    });
    this.numFeatures = args.embedDim * 2 ** (args.depths.length - 1);
    this.norm = new LayerNorm(this.numFeatures, 1e-5);
    this.avgpool = new AdaptiveAvgPool2d(1);
    this.dropRate = args.dropRate ?? 0;
    this.setNumClasses(numClasses);
    this.head = this.makeHead(numClasses);
    // torchvision's init: every Linear (MLPs included) trunc_normal(0.02) with zero bias.
    for (const m of this.modules()) {
      if (m instanceof Linear) {
        truncNormal_(m.weight, 0.02);
        if (m.bias) zeros_(m.bias);
      }
    }
  }

  private makeHead(numClasses: number): Module {
    if (numClasses === 0) return new Identity();
    if (this.headType === 'wide') return createClassifier(this.numFeatures, numClasses, { head: 'wide' });
    const fc = new Linear(this.numFeatures, numClasses);
    truncNormal_(fc.weight, 0.02);
    zeros_(fc.bias!);
    return fc;
  }

  /** [N, C, H, W] after the final norm (torchvision norms channels-last, then permutes). */
  override forwardFeatures(x: T.Tensor): T.Tensor {
    if (x.ndim !== 4)
      throw new RangeError(
        `Error in SwinTransformer: expected input [N, C, H, W] but received shape [${x.shape.join(', ')}]`,
      );
    return pipe(x, this.features, this.norm, (t) => t.permute([0, 3, 1, 2]));
  }

  override forwardHead(features: T.Tensor, preLogits = false): T.Tensor {
    const flatten = (t: T.Tensor): T.Tensor => t.flatten(1);
    const drop = (t: T.Tensor): T.Tensor =>
      this.dropRate > 0 && this.training ? T.F.dropout(t, this.dropRate, true) : t;
    return preLogits
      ? pipe(features, this.avgpool, flatten, drop)
      : pipe(features, this.avgpool, flatten, drop, this.head);
  }

  override resetClassifier(numClasses: number): void {
    checkNumClasses(numClasses);
    const old = this.head;
    this.head = this.makeHead(numClasses);
    old.dispose();
    this.setNumClasses(numClasses);
  }

  override getClassifier(): Module {
    return this.head;
  }
}

// --- create ----------------------------------------------------------------------------

function createSwin(variant: SwinArgs, o: CreateModelOptions): SwinTransformer {
  const pick = <K extends keyof SwinArgs>(k: K): SwinArgs[K] =>
    o[k] !== undefined ? (o[k] as SwinArgs[K]) : variant[k];
  return new SwinTransformer({
    ...variant,
    numClasses: pick('numClasses'),
    inChans: pick('inChans'),
    dropRate: pick('dropRate'),
    dropPathRate: pick('dropPathRate'),
    head: checkHead(o.head),
    dropout: pick('dropout'),
    attentionDropout: pick('attentionDropout'),
  });
}

// --- configs ---------------------------------------------------------------------------

/** torchvision's Swin_T_Weights transforms: bicubic resize to 232, crop 224. */
const SWIN_T_CFG: ModelCfg = {
  inputSize: [3, 224, 224],
  mean: IMAGENET_MEAN,
  std: IMAGENET_STD,
  interpolation: 'bicubic',
  cropPct: 224 / 232,
  classifier: 'head',
  firstConv: 'features.0.0',
  numClasses: 1000,
  source: 'torchvision',
};

// --- variants --------------------------------------------------------------------------

export const SWIN_VARIANTS: Readonly<Record<string, { args: SwinArgs; cfg: ModelCfg }>> = {
  swin_tiny_patch4_window7_224: {
    args: {
      patchSize: 4,
      embedDim: 96,
      depths: [2, 2, 6, 2],
      numHeads: [3, 6, 12, 24],
      windowSize: 7,
      dropPathRate: 0.2,
    },
    cfg: SWIN_T_CFG,
  },
};

for (const [name, v] of Object.entries(SWIN_VARIANTS)) {
  registerModel(name, (o) => createSwin(v.args, o), v.cfg, { family: 'swin' });
}
