// EfficientNet B0-B7 in torchvision's layout (torchvision/models/efficientnet.py,
// 0.14), so torchvision's ImageNet weights load without renaming:
// features.0 stem, features.1-7 MBConv stages (features.N.M.block.K...),
// features.8 head conv, classifier = Dropout + Linear ('classifier.1').
// Order as in timm: helpers, blocks, model, create function, configs, variants.
import * as T from '../tensor/index.js';
import { Module, pipe } from '../nn/module.js';
import { Conv2d } from '../nn/layers/conv.js';
import { BatchNorm2d } from '../nn/layers/norm.js';
import { Linear, Identity } from '../nn/layers/linear.js';
import { SiLU } from '../nn/layers/activation.js';
import { AdaptiveAvgPool2d } from '../nn/layers/pooling.js';
import { Dropout, DropPath } from '../nn/layers/dropout.js';
import { Sequential } from '../nn/layers/containers.js';
import { kaimingNormal_, ones_, uniform_, zeros_ } from '../nn/init.js';
import { ClassifierModel, IMAGENET_MEAN, IMAGENET_STD, type ModelCfg } from './model.js';
import { registerModel, type CreateModelOptions } from './registry.js';
import { checkHead, checkNumClasses, createClassifier, type HeadType } from './head.js';

// --- helpers ---------------------------------------------------------------------------

/** torchvision's _make_divisible: nearest multiple of `divisor`, never more than 10% below v. */
export function makeDivisible(v: number, divisor = 8, minValue = divisor): number {
  let out = Math.max(minValue, Math.floor(Math.trunc(v + divisor / 2) / divisor) * divisor);
  if (out < 0.9 * v) out += divisor;
  return out;
}

interface NormArgs {
  eps: number;
  momentum: number;
}

/** Conv (no bias) + BatchNorm + optional SiLU, named 0/1/2 like torchvision's Conv2dNormActivation. */
export class ConvNormAct extends Sequential {
  constructor(
    inCh: number,
    outCh: number,
    kernel: number,
    o: { stride?: number; groups?: number; act?: boolean; norm: NormArgs },
  ) {
    super(
      new Conv2d(inCh, outCh, kernel, {
        stride: o.stride ?? 1,
        padding: (kernel - 1) >> 1,
        groups: o.groups ?? 1,
        bias: false,
      }),
      new BatchNorm2d(outCh, o.norm),
    );
    if (o.act ?? true) this.append(new SiLU());
  }
}

// --- blocks ----------------------------------------------------------------------------

/** torchvision.ops.SqueezeExcitation with SiLU: x * sigmoid(fc2(silu(fc1(avgpool(x))))). */
export class SqueezeExcitation extends Module {
  readonly fc1: Conv2d;
  readonly fc2: Conv2d;

  constructor(channels: number, squeezeChannels: number) {
    super();
    this.fc1 = new Conv2d(channels, squeezeChannels, 1);
    this.fc2 = new Conv2d(squeezeChannels, channels, 1);
  }

  override forward(x: T.Tensor): T.Tensor {
    const scale = pipe(x, (t) => T.F.adaptiveAvgPool2d(t, 1), this.fc1, T.F.silu, this.fc2, T.F.sigmoid);
    const out = scale.mul(x);
    scale.dispose();
    return out;
  }
}

/** One block of a stage after width/depth scaling (torchvision's MBConvConfig for one block). */
export interface MBConvArgs {
  expandRatio: number;
  kernel: number;
  stride: number;
  inChannels: number;
  outChannels: number;
  dropPath: number;
  norm: NormArgs;
}

/** Inverted residual: expand 1x1 -> depthwise kxk -> SE -> project 1x1; residual with stochastic depth when shapes allow. */
export class MBConv extends Module {
  readonly block: Sequential;
  readonly stochastic_depth: DropPath;
  readonly useResConnect: boolean;

  constructor(a: MBConvArgs) {
    super();
    if (a.stride !== 1 && a.stride !== 2)
      throw new RangeError(`Expected stride 1 or 2 for MBConv but received ${a.stride}`);
    this.useResConnect = a.stride === 1 && a.inChannels === a.outChannels;
    const expanded = makeDivisible(a.inChannels * a.expandRatio);
    this.block = new Sequential();
    if (expanded !== a.inChannels) this.block.append(new ConvNormAct(a.inChannels, expanded, 1, { norm: a.norm }));
    this.block.append(
      new ConvNormAct(expanded, expanded, a.kernel, { stride: a.stride, groups: expanded, norm: a.norm }),
    );
    this.block.append(new SqueezeExcitation(expanded, Math.max(1, Math.floor(a.inChannels / 4))));
    this.block.append(new ConvNormAct(expanded, a.outChannels, 1, { act: false, norm: a.norm }));
    this.stochastic_depth = new DropPath(a.dropPath);
  }

  override forward(x: T.Tensor): T.Tensor {
    const out = this.block.forward(x);
    if (!this.useResConnect) return out;
    const dropped = this.stochastic_depth.forward(out);
    if (dropped !== out) out.dispose();
    // In place on the projection BN's output, as torchvision's `result += input` (BN backward doesn't need it).
    return dropped.add_(x);
  }
}

// --- model -----------------------------------------------------------------------------

/** One stage of Table 1 of the EfficientNet paper, before width/depth scaling. */
export interface StageSpec {
  expandRatio: number;
  kernel: number;
  stride: number;
  inChannels: number;
  outChannels: number;
  layers: number;
}

/** The B0 stages; B1-B7 scale them (torchvision's _efficientnet_conf). */
export const EFFICIENTNET_B0_STAGES: readonly StageSpec[] = [
  { expandRatio: 1, kernel: 3, stride: 1, inChannels: 32, outChannels: 16, layers: 1 },
  { expandRatio: 6, kernel: 3, stride: 2, inChannels: 16, outChannels: 24, layers: 2 },
  { expandRatio: 6, kernel: 5, stride: 2, inChannels: 24, outChannels: 40, layers: 2 },
  { expandRatio: 6, kernel: 3, stride: 2, inChannels: 40, outChannels: 80, layers: 3 },
  { expandRatio: 6, kernel: 5, stride: 1, inChannels: 80, outChannels: 112, layers: 3 },
  { expandRatio: 6, kernel: 5, stride: 2, inChannels: 112, outChannels: 192, layers: 4 },
  { expandRatio: 6, kernel: 3, stride: 1, inChannels: 192, outChannels: 320, layers: 1 },
];

/** Everything an EfficientNet variant is made of. */
export interface EfficientNetArgs {
  /** 'wide': the write-up's wider head (numFeatures -> 4096 -> classes) in the classifier slot. */
  head?: HeadType;
  widthMult: number;
  depthMult: number;
  /** Dropout before the classifier (torchvision: 0.2 for B0/B1 up to 0.5 for B6/B7). */
  dropRate: number;
  /** Stochastic depth, rising linearly over the blocks from 0 towards this rate (torchvision: 0.2). */
  dropPathRate?: number;
  /** BatchNorm eps and momentum (B5-B7 were ported from TF with 1e-3 and 0.01). */
  bnEps?: number;
  bnMomentum?: number;
  numClasses?: number;
  inChans?: number;
}

export class EfficientNet extends ClassifierModel {
  readonly features: Sequential;
  readonly avgpool: AdaptiveAvgPool2d;
  classifier: Sequential;
  readonly numFeatures: number;

  private readonly headType: HeadType;

  constructor(args: EfficientNetArgs) {
    super();
    this.headType = checkHead(args.head);
    const numClasses = args.numClasses ?? 1000;
    checkNumClasses(numClasses);
    const norm: NormArgs = { eps: args.bnEps ?? 1e-5, momentum: args.bnMomentum ?? 0.1 };
    const stages = EFFICIENTNET_B0_STAGES.map((s) => ({
      ...s,
      inChannels: makeDivisible(s.inChannels * args.widthMult),
      outChannels: makeDivisible(s.outChannels * args.widthMult),
      layers: Math.ceil(s.layers * args.depthMult),
    }));
    const total = stages.reduce((a, s) => a + s.layers, 0);
    const dpr = args.dropPathRate ?? 0.2;

    this.features = new Sequential(new ConvNormAct(args.inChans ?? 3, stages[0]!.inChannels, 3, { stride: 2, norm }));
    let id = 0;
    for (const s of stages) {
      const stage = new Sequential();
      for (let i = 0; i < s.layers; i++) {
        stage.append(
          new MBConv({
            expandRatio: s.expandRatio,
            kernel: s.kernel,
            norm,
            stride: i === 0 ? s.stride : 1,
            inChannels: i === 0 ? s.inChannels : s.outChannels,
            outChannels: s.outChannels,
            dropPath: (dpr * id++) / total, // torchvision divides by the block count, not count - 1
          }),
        );
      }
      this.features.append(stage);
    }
    const last = stages[stages.length - 1]!.outChannels;
    this.numFeatures = 4 * last;
    this.features.append(new ConvNormAct(last, this.numFeatures, 1, { norm }));
    this.avgpool = new AdaptiveAvgPool2d(1);
    this.setNumClasses(numClasses);
    this.classifier = new Sequential(new Dropout(args.dropRate), this.makeHead(numClasses));
    this.initWeights();
  }

  private makeHead(numClasses: number): Module {
    if (numClasses === 0) return new Identity();
    if (this.headType === 'wide') return createClassifier(this.numFeatures, numClasses, { head: 'wide' });
    const fc = new Linear(this.numFeatures, numClasses);
    const r = 1 / Math.sqrt(numClasses);
    uniform_(fc.weight, -r, r);
    zeros_(fc.bias!);
    return fc;
  }

  /** torchvision's init: kaiming normal (fan_out) convs with zero bias, BN 1/0 (the classifier is set in makeHead). */
  private initWeights(): void {
    for (const m of this.modules()) {
      if (m instanceof Conv2d) {
        kaimingNormal_(m.weight, { mode: 'fan_out' });
        if (m.bias) zeros_(m.bias);
      } else if (m instanceof BatchNorm2d && m.weight && m.bias) {
        ones_(m.weight);
        zeros_(m.bias);
      }
    }
  }

  override forwardFeatures(x: T.Tensor): T.Tensor {
    if (x.ndim !== 4)
      throw new RangeError(
        `Error in EfficientNet: expected input [N, C, H, W] but received shape [${x.shape.join(', ')}]`,
      );
    return this.features.forward(x);
  }

  override forwardHead(features: T.Tensor, preLogits = false): T.Tensor {
    const flatten = (t: T.Tensor): T.Tensor => t.flatten(1);
    return preLogits
      ? pipe(features, this.avgpool, flatten, this.classifier.at(0))
      : pipe(features, this.avgpool, flatten, this.classifier);
  }

  override resetClassifier(numClasses: number): void {
    checkNumClasses(numClasses);
    const old = this.classifier.at(1);
    this.classifier = new Sequential(this.classifier.at(0), this.makeHead(numClasses));
    old.dispose();
    this.setNumClasses(numClasses);
  }

  override getClassifier(): Module {
    return this.classifier.at(1);
  }
}

// --- create ----------------------------------------------------------------------------

function createEfficientNet(variant: EfficientNetArgs, o: CreateModelOptions): EfficientNet {
  const pick = <K extends keyof EfficientNetArgs>(k: K): EfficientNetArgs[K] =>
    o[k] !== undefined ? (o[k] as EfficientNetArgs[K]) : variant[k];
  return new EfficientNet({
    ...variant,
    numClasses: pick('numClasses'),
    inChans: pick('inChans'),
    dropRate: pick('dropRate'),
    dropPathRate: pick('dropPathRate'),
    head: checkHead(o.head),
  });
}

// --- configs ---------------------------------------------------------------------------

/** torchvision's eval transforms of the DEFAULT weights: crop, resize (cropPct = crop / resize), interpolation. */
function cfg(crop: number, resize: number, interpolation: ModelCfg['interpolation'] = 'bicubic'): ModelCfg {
  return {
    inputSize: [3, crop, crop],
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    interpolation,
    cropPct: crop / resize,
    classifier: 'classifier.1',
    firstConv: 'features.0.0',
    numClasses: 1000,
    source: 'torchvision',
  };
}

// --- variants --------------------------------------------------------------------------

const TF_BN = { bnEps: 1e-3, bnMomentum: 0.01 };

/** Width, depth, dropout (torchvision's efficientnet_b0..b7) and the data config of their weights. */
export const EFFICIENTNET_VARIANTS: Readonly<Record<string, { args: EfficientNetArgs; cfg: ModelCfg }>> = {
  efficientnet_b0: { args: { widthMult: 1.0, depthMult: 1.0, dropRate: 0.2 }, cfg: cfg(224, 256) },
  // B1's DEFAULT weights (IMAGENET1K_V2) were trained with bilinear resizing to 255.
  efficientnet_b1: { args: { widthMult: 1.0, depthMult: 1.1, dropRate: 0.2 }, cfg: cfg(240, 255, 'bilinear') },
  efficientnet_b2: { args: { widthMult: 1.1, depthMult: 1.2, dropRate: 0.3 }, cfg: cfg(288, 288) },
  efficientnet_b3: { args: { widthMult: 1.2, depthMult: 1.4, dropRate: 0.3 }, cfg: cfg(300, 320) },
  efficientnet_b4: { args: { widthMult: 1.4, depthMult: 1.8, dropRate: 0.4 }, cfg: cfg(380, 384) },
  efficientnet_b5: { args: { widthMult: 1.6, depthMult: 2.2, dropRate: 0.4, ...TF_BN }, cfg: cfg(456, 456) },
  efficientnet_b6: { args: { widthMult: 1.8, depthMult: 2.6, dropRate: 0.5, ...TF_BN }, cfg: cfg(528, 528) },
  efficientnet_b7: { args: { widthMult: 2.0, depthMult: 3.1, dropRate: 0.5, ...TF_BN }, cfg: cfg(600, 600) },
};

for (const [name, v] of Object.entries(EFFICIENTNET_VARIANTS)) {
  registerModel(name, (o) => createEfficientNet(v.args, o), v.cfg, { family: 'efficientnet' });
}
