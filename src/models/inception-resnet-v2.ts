// Inception-ResNet-v2 (Szegedy et al. 2016) in timm's layout and names
// (timm/models/inception_resnet_v2.py): conv2d_1a ... mixed_5b, repeat
// (Block35 x10), mixed_6a, repeat_1 (Block17 x20), mixed_7a, repeat_2 (Block8
// x9), block8, conv2d_7b, global average pool, classifier `classif`. The
// recipe's wider variant widens conv2d_7b 1536 -> 4096 with a bias-free
// classifier. Order as in timm: blocks, model, create, configs, variants.
import * as T from '../tensor/index.js';
import { Module, pipe } from '../nn/module.js';
import { Conv2d } from '../nn/layers/conv.js';
import { BatchNorm2d } from '../nn/layers/norm.js';
import { MaxPool2d, AvgPool2d } from '../nn/layers/pooling.js';
import { Sequential } from '../nn/layers/containers.js';
import { ClassifierModel, type ModelCfg } from './model.js';
import { registerModel, type CreateModelOptions } from './registry.js';
import { createClassifier, checkHead, type HeadType } from './head.js';

type Pair = number | [number, number];

// --- blocks ----------------------------------------------------------------------------

/** conv (no bias) + BN (eps 1e-3) + ReLU. */
export class BasicConv2d extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  constructor(inC: number, outC: number, kernelSize: Pair, stride = 1, padding: Pair = 0) {
    super();
    this.conv = new Conv2d(inC, outC, kernelSize, { stride, padding, bias: false });
    this.bn = new BatchNorm2d(outC, { eps: 0.001 });
  }
  override forward(x: T.Tensor): T.Tensor {
    const c = this.conv.forward(x);
    const out = this.bn.forward(c);
    c.dispose();
    return out.relu_();
  }
}

/** Runs every branch on the same input and concatenates along channels. */
function branches(x: T.Tensor, ...bs: Module[]): T.Tensor {
  const outs = bs.map((b) => b.forward(x));
  const out = T.F.cat(outs, 1);
  for (const o of outs) if (o !== x) o.dispose();
  return out;
}

/** out = act(conv2d(branches) * scale + x). */
function scaledResidual(x: T.Tensor, mixed: T.Tensor, conv: Conv2d, scale: number, relu: boolean): T.Tensor {
  const up = conv.forward(mixed);
  mixed.dispose();
  up.mul_(scale).add_(x);
  return relu ? up.relu_() : up;
}

const bc = (inC: number, outC: number, k: Pair, stride = 1, padding: Pair = 0): BasicConv2d =>
  new BasicConv2d(inC, outC, k, stride, padding);

export class Mixed5b extends Module {
  readonly branch0 = bc(192, 96, 1);
  readonly branch1 = new Sequential(bc(192, 48, 1), bc(48, 64, 5, 1, 2));
  readonly branch2 = new Sequential(bc(192, 64, 1), bc(64, 96, 3, 1, 1), bc(96, 96, 3, 1, 1));
  readonly branch3 = new Sequential(
    new AvgPool2d(3, { stride: 1, padding: 1, countIncludePad: false }),
    bc(192, 64, 1),
  );
  override forward(x: T.Tensor): T.Tensor {
    return branches(x, this.branch0, this.branch1, this.branch2, this.branch3);
  }
}

export class Block35 extends Module {
  readonly branch0 = bc(320, 32, 1);
  readonly branch1 = new Sequential(bc(320, 32, 1), bc(32, 32, 3, 1, 1));
  readonly branch2 = new Sequential(bc(320, 32, 1), bc(32, 48, 3, 1, 1), bc(48, 64, 3, 1, 1));
  readonly conv2d = new Conv2d(128, 320, 1);
  constructor(readonly scale = 1) {
    super();
  }
  override forward(x: T.Tensor): T.Tensor {
    return scaledResidual(x, branches(x, this.branch0, this.branch1, this.branch2), this.conv2d, this.scale, true);
  }
}

export class Mixed6a extends Module {
  readonly branch0 = bc(320, 384, 3, 2);
  readonly branch1 = new Sequential(bc(320, 256, 1), bc(256, 256, 3, 1, 1), bc(256, 384, 3, 2));
  readonly branch2 = new MaxPool2d(3, { stride: 2 });
  override forward(x: T.Tensor): T.Tensor {
    return branches(x, this.branch0, this.branch1, this.branch2);
  }
}

export class Block17 extends Module {
  readonly branch0 = bc(1088, 192, 1);
  readonly branch1 = new Sequential(bc(1088, 128, 1), bc(128, 160, [1, 7], 1, [0, 3]), bc(160, 192, [7, 1], 1, [3, 0]));
  readonly conv2d = new Conv2d(384, 1088, 1);
  constructor(readonly scale = 1) {
    super();
  }
  override forward(x: T.Tensor): T.Tensor {
    return scaledResidual(x, branches(x, this.branch0, this.branch1), this.conv2d, this.scale, true);
  }
}

export class Mixed7a extends Module {
  readonly branch0 = new Sequential(bc(1088, 256, 1), bc(256, 384, 3, 2));
  readonly branch1 = new Sequential(bc(1088, 256, 1), bc(256, 288, 3, 2));
  readonly branch2 = new Sequential(bc(1088, 256, 1), bc(256, 288, 3, 1, 1), bc(288, 320, 3, 2));
  readonly branch3 = new MaxPool2d(3, { stride: 2 });
  override forward(x: T.Tensor): T.Tensor {
    return branches(x, this.branch0, this.branch1, this.branch2, this.branch3);
  }
}

export class Block8 extends Module {
  readonly branch0 = bc(2080, 192, 1);
  readonly branch1 = new Sequential(bc(2080, 192, 1), bc(192, 224, [1, 3], 1, [0, 1]), bc(224, 256, [3, 1], 1, [1, 0]));
  readonly conv2d = new Conv2d(448, 2080, 1);
  constructor(
    readonly scale = 1,
    readonly noRelu = false,
  ) {
    super();
  }
  override forward(x: T.Tensor): T.Tensor {
    return scaledResidual(x, branches(x, this.branch0, this.branch1), this.conv2d, this.scale, !this.noRelu);
  }
}

// --- model -----------------------------------------------------------------------------

export interface InceptionResNetV2Args {
  numClasses?: number;
  inChans?: number;
  dropRate?: number;
  /** Channels of conv2d_7b, the pooled feature width (1536; the recipe's wider variant 4096). */
  numFeatures?: number;
  /** Bias in the classifier (the wider variant uses none). */
  fcBias?: boolean;
  head?: HeadType;
  headHidden?: number;
}

/** Smallest input side the stride-2 valid convolutions accept (as timm's tests use). */
export const INCEPTION_RESNET_V2_MIN_SIZE = 75;

export class InceptionResNetV2 extends ClassifierModel {
  readonly conv2d_1a: BasicConv2d;
  readonly conv2d_2a: BasicConv2d;
  readonly conv2d_2b: BasicConv2d;
  readonly maxpool_3a = new MaxPool2d(3, { stride: 2 });
  readonly conv2d_3b: BasicConv2d;
  readonly conv2d_4a: BasicConv2d;
  readonly maxpool_5a = new MaxPool2d(3, { stride: 2 });
  readonly mixed_5b: Mixed5b;
  readonly repeat: Sequential;
  readonly mixed_6a: Mixed6a;
  readonly repeat_1: Sequential;
  readonly mixed_7a: Mixed7a;
  readonly repeat_2: Sequential;
  readonly block8: Block8;
  readonly conv2d_7b: BasicConv2d;
  classif: Module;
  readonly numFeatures: number;
  readonly dropRate: number;
  private readonly headOpts: { head: HeadType; headHidden: number | undefined; bias: boolean };

  constructor(a: InceptionResNetV2Args = {}) {
    super();
    const numClasses = a.numClasses ?? 1000;
    this.conv2d_1a = bc(a.inChans ?? 3, 32, 3, 2);
    this.conv2d_2a = bc(32, 32, 3);
    this.conv2d_2b = bc(32, 64, 3, 1, 1);
    this.conv2d_3b = bc(64, 80, 1);
    this.conv2d_4a = bc(80, 192, 3);
    this.mixed_5b = new Mixed5b();
    this.repeat = new Sequential(...Array.from({ length: 10 }, () => new Block35(0.17)));
    this.mixed_6a = new Mixed6a();
    this.repeat_1 = new Sequential(...Array.from({ length: 20 }, () => new Block17(0.1)));
    this.mixed_7a = new Mixed7a();
    this.repeat_2 = new Sequential(...Array.from({ length: 9 }, () => new Block8(0.2)));
    this.block8 = new Block8(1, true);
    this.numFeatures = a.numFeatures ?? 1536;
    this.conv2d_7b = bc(2080, this.numFeatures, 1);
    this.dropRate = a.dropRate ?? 0;
    this.headOpts = { head: checkHead(a.head), headHidden: a.headHidden, bias: a.fcBias ?? true };
    this.classif = createClassifier(this.numFeatures, numClasses, this.headOpts);
    this.setNumClasses(numClasses);
  }

  override forwardFeatures(x: T.Tensor): T.Tensor {
    if (x.ndim !== 4)
      throw new RangeError(
        `Error in InceptionResNetV2: expected input [N, C, H, W] but received shape [${x.shape.join(', ')}]`,
      );
    const [h, w] = x.shape.slice(2) as [number, number];
    if (h < INCEPTION_RESNET_V2_MIN_SIZE || w < INCEPTION_RESNET_V2_MIN_SIZE) {
      throw new RangeError(
        `Error in InceptionResNetV2: input ${h}x${w} is smaller than the minimum ${INCEPTION_RESNET_V2_MIN_SIZE}x${INCEPTION_RESNET_V2_MIN_SIZE}`,
      );
    }
    return pipe(
      x,
      this.conv2d_1a,
      this.conv2d_2a,
      this.conv2d_2b,
      this.maxpool_3a,
      this.conv2d_3b,
      this.conv2d_4a,
      this.maxpool_5a,
      this.mixed_5b,
      this.repeat,
      this.mixed_6a,
      this.repeat_1,
      this.mixed_7a,
      this.repeat_2,
      this.block8,
      this.conv2d_7b,
    );
  }

  override forwardHead(features: T.Tensor, preLogits = false): T.Tensor {
    const pool = (t: T.Tensor): T.Tensor => t.mean([2, 3]);
    const drop = (t: T.Tensor): T.Tensor =>
      this.dropRate > 0 && this.training ? T.F.dropout(t, this.dropRate, true) : t;
    return preLogits ? pipe(features, pool, drop) : pipe(features, pool, drop, this.classif);
  }

  override resetClassifier(numClasses: number): void {
    const next = createClassifier(this.numFeatures, numClasses, this.headOpts);
    this.classif.dispose();
    this.classif = next;
    this.setNumClasses(numClasses);
  }

  override getClassifier(): Module {
    return this.classif;
  }
}

// --- create ----------------------------------------------------------------------------

function createInceptionResNetV2(variant: InceptionResNetV2Args, o: CreateModelOptions): InceptionResNetV2 {
  const pick = <K extends keyof InceptionResNetV2Args>(k: K): InceptionResNetV2Args[K] =>
    o[k] !== undefined ? (o[k] as InceptionResNetV2Args[K]) : variant[k];
  return new InceptionResNetV2({
    ...variant,
    numClasses: pick('numClasses'),
    inChans: pick('inChans'),
    dropRate: pick('dropRate'),
    head: pick('head'),
    headHidden: pick('headHidden'),
    fcBias: pick('fcBias'),
  });
}

// --- configs ---------------------------------------------------------------------------

/** timm's config: 299 px, Inception mean/std 0.5, bicubic, crop 0.8975. */
function cfg(source: string): ModelCfg {
  return {
    inputSize: [3, 299, 299],
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
    interpolation: 'bicubic',
    cropPct: 0.8975,
    classifier: 'classif',
    firstConv: 'conv2d_1a.conv',
    numClasses: 1000,
    source,
  };
}

// --- variants --------------------------------------------------------------------------

export const INCEPTION_RESNET_V2_VARIANTS: Readonly<Record<string, { args: InceptionResNetV2Args; source: string }>> = {
  inception_resnet_v2: { args: {}, source: 'timm' },
  inception_resnet_v2_wider: {
    args: { numFeatures: 4096, fcBias: false },
    source: 'goodsrec recipe (wider Inception-ResNet-v2)',
  },
};

for (const [name, v] of Object.entries(INCEPTION_RESNET_V2_VARIANTS)) {
  registerModel(name, (o) => createInceptionResNetV2(v.args, o), cfg(v.source), { family: 'inception_resnet_v2' });
}
