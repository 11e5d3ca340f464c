// ResNet family (ResNet, ResNeXt, wide ResNet; SE/CBAM-style attention via the
// `se` slot) in torchvision's layout, so torchvision and timm ResNet weights
// load without renaming. Order as in timm's resnet.py: blocks, layer
// builder, model, create function, configs, registered variants.
import * as T from '../tensor/index.js';
import { Module, pipe } from '../nn/module.js';
import { Conv2d } from '../nn/layers/conv.js';
import { BatchNorm2d } from '../nn/layers/norm.js';
import { MaxPool2d, AdaptiveAvgPool2d } from '../nn/layers/pooling.js';
import { DropPath } from '../nn/layers/dropout.js';
import { Sequential } from '../nn/layers/containers.js';
import { createAttn } from '../nn/layers/create-attn.js';
import { constant_, kaimingNormal_, ones_, zeros_ } from '../nn/init.js';
import { ClassifierModel, IMAGENET_MEAN, IMAGENET_STD, type ModelCfg } from './model.js';
import { registerModel, type CreateModelOptions, type CheckpointFilter } from './registry.js';
import { createClassifier, checkHead, checkNumClasses, type HeadType } from './head.js';

const reluInPlace = (x: T.Tensor): T.Tensor => x.relu_();

// --- blocks ----------------------------------------------------------------------------

export interface BlockArgs {
  inplanes: number;
  planes: number;
  stride: number;
  downsample: Module | null;
  cardinality: number;
  baseWidth: number;
  attnLayer: string | null;
  /** Options for the attention module (e.g. CBAM's mlpBias). */
  attnArgs?: AttnArgs;
  dropPath: number;
}

type AttnArgs = Readonly<Record<string, number | string | boolean>>;

/** Two 3x3 convs (ResNet-18/34). */
export class BasicBlock extends Module {
  static readonly expansion = 1;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly se: Module | null;
  readonly downsample: Module | null;
  readonly drop_path: DropPath | null;

  constructor(a: BlockArgs) {
    super();
    if (a.cardinality !== 1 || a.baseWidth !== 64)
      throw new RangeError('BasicBlock only supports cardinality 1 and baseWidth 64');
    this.conv1 = new Conv2d(a.inplanes, a.planes, 3, { stride: a.stride, padding: 1, bias: false });
    this.bn1 = new BatchNorm2d(a.planes);
    this.conv2 = new Conv2d(a.planes, a.planes, 3, { padding: 1, bias: false });
    this.bn2 = new BatchNorm2d(a.planes);
    this.se = createAttn(a.attnLayer, a.planes, a.attnArgs);
    this.downsample = a.downsample;
    this.drop_path = a.dropPath > 0 ? new DropPath(a.dropPath) : null;
  }

  /** The BN whose weight is zeroed for zero-init-residual. */
  lastNorm(): BatchNorm2d {
    return this.bn2;
  }

  override forward(x: T.Tensor): T.Tensor {
    const out = pipe(x, this.conv1, this.bn1, reluInPlace, this.conv2, this.bn2);
    return residual(out, x, this.se, this.drop_path, this.downsample);
  }
}

/** 1x1 -> 3x3 (stride, groups) -> 1x1 x4, torchvision's ResNet v1.5 bottleneck. */
export class Bottleneck extends Module {
  static readonly expansion = 4;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly se: Module | null;
  readonly downsample: Module | null;
  readonly drop_path: DropPath | null;

  constructor(a: BlockArgs) {
    super();
    const width = Math.floor(a.planes * (a.baseWidth / 64)) * a.cardinality;
    const outplanes = a.planes * Bottleneck.expansion;
    this.conv1 = new Conv2d(a.inplanes, width, 1, { bias: false });
    this.bn1 = new BatchNorm2d(width);
    this.conv2 = new Conv2d(width, width, 3, { stride: a.stride, padding: 1, groups: a.cardinality, bias: false });
    this.bn2 = new BatchNorm2d(width);
    this.conv3 = new Conv2d(width, outplanes, 1, { bias: false });
    this.bn3 = new BatchNorm2d(outplanes);
    this.se = createAttn(a.attnLayer, outplanes, a.attnArgs);
    this.downsample = a.downsample;
    this.drop_path = a.dropPath > 0 ? new DropPath(a.dropPath) : null;
  }

  lastNorm(): BatchNorm2d {
    return this.bn3;
  }

  override forward(x: T.Tensor): T.Tensor {
    const out = pipe(x, this.conv1, this.bn1, reluInPlace, this.conv2, this.bn2, reluInPlace, this.conv3, this.bn3);
    return residual(out, x, this.se, this.drop_path, this.downsample);
  }
}

/** out = relu(dropPath(se(branch)) + shortcut(x)), in place on the branch like torchvision's `out += identity`. */
function residual(
  branch: T.Tensor,
  x: T.Tensor,
  se: Module | null,
  dropPath: Module | null,
  downsample: Module | null,
): T.Tensor {
  let out = branch;
  for (const m of [se, dropPath]) {
    if (!m) continue;
    const next = m.forward(out);
    if (next !== out) {
      out.dispose();
      out = next;
    }
  }
  const shortcut = downsample ? downsample.forward(x) : x;
  out.add_(shortcut);
  if (shortcut !== x) shortcut.dispose();
  return out.relu_();
}

type BlockClass = typeof BasicBlock | typeof Bottleneck;
const BLOCKS: Record<ResNetBlock, BlockClass> = { basic: BasicBlock, bottleneck: Bottleneck };

// --- layers ----------------------------------------------------------------------------

interface StageSpec {
  planes: number;
  blocks: number;
  stride: number;
}

/** One stage; the downsample is built before the first block, as torchvision does (same init draw order). */
function makeStage(
  inplanes: number,
  s: StageSpec,
  block: BlockClass,
  a: Omit<BlockArgs, 'inplanes' | 'planes' | 'stride' | 'downsample' | 'dropPath'>,
  dropPaths: number[],
): Sequential {
  const outplanes = s.planes * block.expansion;
  let downsample: Module | null = null;
  if (s.stride !== 1 || inplanes !== outplanes) {
    downsample = new Sequential(
      new Conv2d(inplanes, outplanes, 1, { stride: s.stride, bias: false }),
      new BatchNorm2d(outplanes),
    );
  }
  const stage = new Sequential();
  for (let i = 0; i < s.blocks; i++) {
    stage.append(
      new block({
        ...a,
        inplanes: i === 0 ? inplanes : outplanes,
        planes: s.planes,
        stride: i === 0 ? s.stride : 1,
        downsample: i === 0 ? downsample : null,
        dropPath: dropPaths[i] ?? 0,
      }),
    );
  }
  return stage;
}

// --- model -----------------------------------------------------------------------------

export type ResNetBlock = 'basic' | 'bottleneck';

/** Everything a ResNet variant is made of: variants are these values, not subclasses. */
export interface ResNetArgs {
  block: ResNetBlock;
  /** Blocks per stage, e.g. [3, 4, 6, 3] for ResNet-50. */
  layers: [number, number, number, number];
  /** Planes per stage before expansion (default [64, 128, 256, 512]; the recipe's "wider" variants widen the last). */
  planes?: [number, number, number, number];
  numClasses?: number;
  inChans?: number;
  /** Groups of the 3x3 conv (ResNeXt). */
  cardinality?: number;
  /** Width per group (ResNeXt 4 for 32x4d; wide ResNet 128). */
  baseWidth?: number;
  /** Attention in every block's `se` slot, by createAttn name ('se', 'cbam', ...). */
  attnLayer?: string | null;
  /** Options of the block attention (createAttn's third argument). */
  attnArgs?: AttnArgs;
  /** Attention between stages (after layer1-3) in slots bam1..bam3, by createAttn name ('bam'). */
  stageAttn?: string | null;
  /** Options of the stage attention (e.g. BAM's combine). */
  stageAttnArgs?: AttnArgs;
  /** Classifier head: 'linear' (default) or the write-up's 'wide' (numFeatures -> 4096 -> classes). */
  head?: HeadType;
  /** Hidden width of the wide head (default 4096). */
  headHidden?: number;
  /** Zero the last BN of each residual branch (torchvision's zero_init_residual; timm's zero_init_last). */
  zeroInitLast?: boolean;
  /** Dropout before the classifier. */
  dropRate?: number;
  /** Stochastic depth, rising linearly over the blocks to this rate. */
  dropPathRate?: number;
  /** Bias in the classifier (the wider variants use none). */
  fcBias?: boolean;
}

export class ResNet extends ClassifierModel {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly maxpool: MaxPool2d;
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly layer4: Sequential;
  readonly bam1: Module | null;
  readonly bam2: Module | null;
  readonly bam3: Module | null;
  readonly avgpool: AdaptiveAvgPool2d;
  fc: Module;
  readonly numFeatures: number;
  readonly dropRate: number;
  private readonly fcBias: boolean;
  private readonly head: { head: HeadType; headHidden: number | undefined };

  constructor(args: ResNetArgs) {
    super();
    const block = BLOCKS[args.block];
    if (!block)
      throw new TypeError(`Expected 'basic' or 'bottleneck' for ResNet block but received ${String(args.block)}`);
    const planes = args.planes ?? [64, 128, 256, 512];
    const numClasses = args.numClasses ?? 1000;
    checkNumClasses(numClasses);
    const blockArgs = {
      cardinality: args.cardinality ?? 1,
      baseWidth: args.baseWidth ?? 64,
      attnLayer: args.attnLayer ?? null,
      attnArgs: args.attnArgs,
    };
    const total = args.layers.reduce((a, b) => a + b, 0);
    const dpr = args.dropPathRate ?? 0;
    const rates = Array.from({ length: total }, (_, i) => (total > 1 ? (dpr * i) / (total - 1) : 0));

    this.conv1 = new Conv2d(args.inChans ?? 3, 64, 7, { stride: 2, padding: 3, bias: false });
    this.bn1 = new BatchNorm2d(64);
    this.maxpool = new MaxPool2d(3, { stride: 2, padding: 1 });
    let inplanes = 64;
    let done = 0;
    const stages: Sequential[] = [];
    for (let i = 0; i < 4; i++) {
      const spec = { planes: planes[i]!, blocks: args.layers[i]!, stride: i === 0 ? 1 : 2 };
      stages.push(makeStage(inplanes, spec, block, blockArgs, rates.slice(done, done + spec.blocks)));
      inplanes = spec.planes * block.expansion;
      done += spec.blocks;
    }
    [this.layer1, this.layer2, this.layer3, this.layer4] = stages as [Sequential, Sequential, Sequential, Sequential];
    const stageOut = (i: number): number => planes[i]! * block.expansion;
    this.bam1 = createAttn(args.stageAttn, stageOut(0), args.stageAttnArgs);
    this.bam2 = createAttn(args.stageAttn, stageOut(1), args.stageAttnArgs);
    this.bam3 = createAttn(args.stageAttn, stageOut(2), args.stageAttnArgs);
    this.avgpool = new AdaptiveAvgPool2d(1);
    this.numFeatures = inplanes;
    this.dropRate = args.dropRate ?? 0;
    this.fcBias = args.fcBias ?? true;
    this.setNumClasses(numClasses);
    this.head = { head: checkHead(args.head), headHidden: args.headHidden };
    this.fc = createClassifier(inplanes, numClasses, { ...this.head, bias: this.fcBias });
    this.initWeights(args.zeroInitLast ?? false);
  }

  /** torchvision's init: kaiming normal (fan_out, relu) convs, BN weight 1 / bias 0, optional zero-init of the last BN per block. */
  private initWeights(zeroInitLast: boolean): void {
    for (const m of this.modules()) {
      if (m instanceof Conv2d) kaimingNormal_(m.weight, { mode: 'fan_out', nonlinearity: 'relu' });
      else if (m instanceof BatchNorm2d && m.weight && m.bias) {
        ones_(m.weight);
        zeros_(m.bias);
      }
    }
    if (zeroInitLast) {
      for (const m of this.modules()) {
        if ((m instanceof Bottleneck || m instanceof BasicBlock) && m.lastNorm().weight)
          constant_(m.lastNorm().weight!, 0);
      }
    }
  }

  override forwardFeatures(x: T.Tensor): T.Tensor {
    if (x.ndim !== 4)
      throw new RangeError(`Error in ResNet: expected input [N, C, H, W] but received shape [${x.shape.join(', ')}]`);
    const stages = [this.layer1, this.bam1, this.layer2, this.bam2, this.layer3, this.bam3, this.layer4].filter(
      (m): m is Module => m !== null,
    );
    return pipe(x, this.conv1, this.bn1, reluInPlace, this.maxpool, ...stages);
  }

  override forwardHead(features: T.Tensor, preLogits = false): T.Tensor {
    const flatten = (t: T.Tensor): T.Tensor => t.flatten(1);
    const drop = (t: T.Tensor): T.Tensor =>
      this.dropRate > 0 && this.training ? T.F.dropout(t, this.dropRate, true) : t;
    return preLogits
      ? pipe(features, this.avgpool, flatten, drop)
      : pipe(features, this.avgpool, flatten, drop, this.fc);
  }

  override resetClassifier(numClasses: number): void {
    checkNumClasses(numClasses);
    const old = this.fc;
    this.fc = createClassifier(this.numFeatures, numClasses, { ...this.head, bias: this.fcBias });
    old.dispose();
    this.setNumClasses(numClasses);
  }

  override getClassifier(): Module {
    return this.fc;
  }
}

// --- create ----------------------------------------------------------------------------

/** Builds a variant: the variant's arguments, overridden by the caller's options. */
function createResNet(variant: ResNetArgs, o: CreateModelOptions): ResNet {
  const pick = <K extends keyof ResNetArgs>(k: K): ResNetArgs[K] =>
    o[k] !== undefined ? (o[k] as ResNetArgs[K]) : variant[k];
  return new ResNet({
    ...variant,
    numClasses: pick('numClasses'),
    inChans: pick('inChans'),
    dropRate: pick('dropRate'),
    dropPathRate: pick('dropPathRate'),
    zeroInitLast: pick('zeroInitLast'),
    attnLayer: pick('attnLayer'),
    planes: pick('planes'),
    fcBias: pick('fcBias'),
    attnArgs: o.attnArgs !== undefined ? { ...variant.attnArgs, ...(o.attnArgs as AttnArgs) } : variant.attnArgs,
    stageAttnArgs:
      o.stageAttnArgs !== undefined
        ? { ...variant.stageAttnArgs, ...(o.stageAttnArgs as AttnArgs) }
        : variant.stageAttnArgs,
    head: pick('head'),
    headHidden: pick('headHidden'),
  });
}

// --- configs ---------------------------------------------------------------------------

function cfg(source: string, over: Partial<ModelCfg> = {}): ModelCfg {
  return {
    inputSize: [3, 224, 224],
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    interpolation: 'bilinear',
    cropPct: 0.875,
    classifier: 'fc',
    firstConv: 'conv1',
    numClasses: 1000,
    source,
    ...over,
  };
}

// --- variants --------------------------------------------------------------------------

/** The ResNet variants, as data. The model zoo adds SE/CBAM/BAM/wider ones the same way. */
export const RESNET_VARIANTS: Readonly<Record<string, ResNetArgs>> = {
  resnet18: { block: 'basic', layers: [2, 2, 2, 2] },
  resnet34: { block: 'basic', layers: [3, 4, 6, 3] },
  resnet50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
  resnet101: { block: 'bottleneck', layers: [3, 4, 23, 3] },
  resnet152: { block: 'bottleneck', layers: [3, 8, 36, 3] },
  resnext50_32x4d: { block: 'bottleneck', layers: [3, 4, 6, 3], cardinality: 32, baseWidth: 4 },
};

/** Registers one ResNet-family variant (used here and by the model zoo for attention/wider variants). */
export function registerResNet(
  name: string,
  args: ResNetArgs,
  config: ModelCfg = cfg('torchvision'),
  filter?: CheckpointFilter,
): void {
  registerModel(
    name,
    (o) => createResNet(args, o),
    config,
    filter ? { family: 'resnet', filter } : { family: 'resnet' },
  );
}

for (const [name, args] of Object.entries(RESNET_VARIANTS)) registerResNet(name, args);
