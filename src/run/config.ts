// Training configuration: the recipe's defaults, a YAML/JSON file, and
// `key=value` overrides, resolved into one validated object that is stored
// with the run.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_MAX_PIXELS } from '../data/limits.js';
import { closestNames } from '../util/did-you-mean.js';
import type { Interpolation } from '../data/resample.js';

/** Fine-tuning from pretrained weights (applied by src/train/finetune.ts). */
export interface FinetuneOptions {
  /** Epochs at the start in which only the classifier learns (0 = off). */
  headOnlyEpochs: number;
  /** Layer-wise lr decay: depth d of D gets lr * layerDecay^(D - d); 1 = off. */
  layerDecay: number;
  /** BatchNorm in eval mode with frozen affine parameters throughout. */
  freezeBn: boolean;
}

export type AmpMode = 'auto' | 'off' | 'bf16' | 'fp16';
/**
 * letterbox: the recipe's structure-retention resize (pad to square, then resize); squash: resize to a
 * square ignoring the aspect ratio; center: timm's eval crop (shorter side to size / cropPct, center crop;
 * training then crops from the image itself, as for squash).
 */
export type ResizeMode = 'letterbox' | 'squash' | 'center';
export type { Interpolation };

export interface TrainConfig {
  data: {
    /** Dataset root: folder layout root/<split>/<class>/<image>, or a manifest dataset. */
    root: string;
    trainSplit: string;
    valSplit: string;
    /** Train on this fraction of the training split (stratified, from the seed). */
    fraction: number;
    /** Bad image files: skip them (reported and counted) or stop. */
    badFiles: 'skip' | 'fail';
    /** Parallel decode/augment workers; 0 = automatic. */
    workers: number;
    /**
     * Keep decoded, letterboxed training images in memory up to this many MiB (0 = off, the default).
     * Epochs after the first run about 1.4x faster on small photos, the first slower; it costs the
     * memory, and large photos fill it quickly. For when the loader limits the step time.
     */
    cacheMB: number;
    /** Pixels per image at most (decompression bombs), from the header before decoding. */
    maxPixels: number;
  };
  model: {
    name: string;
    /** Weights to start from: 'hf-hub:org/name[@rev]', 'torchvision:model[.WEIGHTS]', a file or a folder. */
    pretrained: string | null;
    dropRate: number;
    dropPathRate: number;
    /** 'wide': the write-up's wider classifier head (features -> 4096 -> classes). */
    head: 'linear' | 'wide' | 'arcface' | 'cosface';
    /** Embedding heads (arcface, cosface): width, BN-neck, logit scale s, margin m (null: 0.5 ArcFace, 0.35 CosFace). */
    embeddingDim: number;
    bnNeck: boolean;
    scale: number;
    margin: number | null;
    easyMargin: boolean;
    channelsLast: boolean;
  };
  input: {
    size: number;
    /** Evaluation resolution when it differs from training (timm's test_input_size); 0 = input.size. */
    testSize: number;
    /** letterbox = the recipe's structure-retention resize (pad to square, then resize). */
    resize: ResizeMode;
    /** Evaluation resize filter (timm's interpolation; training crops stay bilinear). */
    interpolation: Interpolation;
    /** Eval: resize to size / cropPct, then center crop size (256 -> 224). */
    cropPct: number;
    /** 'dataset' computes mean/std from the training split; or give [r, g, b]. */
    mean: number[] | 'dataset';
    std: number[] | 'dataset';
  };
  augment: {
    scale: [number, number];
    ratio: [number, number];
    hflip: number;
    colorJitter: number;
    /** Cutout square side in pixels (0 = off). */
    cutout: number;
    /** Random erasing probability (0 = off). */
    randomErasing: number;
    /** timm notation, e.g. 'rand-m9-mstd0.5-inc1' or 'original' (AutoAugment ImageNet policy); null = off. */
    autoAugment: string | null;
  };
  optim: {
    name: 'sgd' | 'adamw';
    /** Learning rate at batch 128, scaled linearly with the batch size. */
    lr: number;
    momentum: number;
    nesterov: boolean;
    weightDecay: number;
    /** No weight decay on biases and normalisation weights. */
    noDecayBiasNorm: boolean;
  };
  schedule: {
    epochs: number;
    warmupEpochs: number;
    minLr: number;
    /** Cosine step per iteration instead of per epoch. */
    perIteration: boolean;
  };
  loss: { labelSmoothing: number };
  /** Fine-tuning from pretrained weights (see src/train/finetune.ts). */
  finetune: FinetuneOptions;
  batchSize: number;
  /** Gradient accumulation: optimizer step every N batches. */
  accumulate: number;
  /** EMA decay of the weights (0 = off). */
  ema: number;
  classBalanced: boolean;
  amp: AmpMode;
  seed: number;
  device: string;
  threads: number;
  validateEvery: number;
  checkpointEvery: number;
  /** Also checkpoint every N steps within an epoch (0 = only at epoch ends). */
  checkpointEverySteps: number;
  keepCheckpoints: number;
  out: string;
  /** Data-parallel training (the processes come from the launcher's environment; see docs/distributed.md). */
  distributed: {
    bucketCapMB: number;
    /** BatchNorm over the global batch of all ranks in training (torch.nn.SyncBatchNorm); false: per replica. */
    syncBn: boolean;
    /** Recorded by the trainer: processes of the run, and batchSize x accumulate x worldSize. */
    worldSize: number;
    globalBatch: number;
  };
}

export const DEFAULT_CONFIG: TrainConfig = {
  data: {
    root: '',
    trainSplit: 'train',
    valSplit: 'test',
    fraction: 1,
    badFiles: 'skip',
    workers: 0,
    cacheMB: 0,
    maxPixels: DEFAULT_MAX_PIXELS,
  },
  model: {
    name: 'resnet50',
    pretrained: null,
    dropRate: 0,
    dropPathRate: 0,
    head: 'linear',
    embeddingDim: 512,
    bnNeck: true,
    scale: 30,
    margin: null,
    easyMargin: false,
    channelsLast: false,
  },
  // mean/std: the recipe's statistics (RP2K, from the competition code); the only copy of these numbers.
  input: {
    size: 224,
    testSize: 0,
    resize: 'letterbox',
    interpolation: 'bilinear',
    cropPct: 0.875,
    mean: [0.4716, 0.425, 0.354],
    std: [0.2178, 0.2079, 0.1935],
  },
  augment: {
    scale: [0.08, 1],
    ratio: [3 / 4, 4 / 3],
    hflip: 0.5,
    colorJitter: 0.4,
    cutout: 14,
    randomErasing: 0,
    autoAugment: null,
  },
  optim: { name: 'sgd', lr: 0.1, momentum: 0.9, nesterov: false, weightDecay: 1e-4, noDecayBiasNorm: true },
  schedule: { epochs: 75, warmupEpochs: 0, minLr: 1e-6, perIteration: false },
  loss: { labelSmoothing: 0.1 },
  finetune: { headOnlyEpochs: 0, layerDecay: 1, freezeBn: false },
  batchSize: 128,
  accumulate: 1,
  ema: 0,
  classBalanced: false,
  amp: 'auto',
  seed: 0,
  device: 'auto',
  threads: 0,
  validateEvery: 1,
  checkpointEvery: 5,
  checkpointEverySteps: 0,
  keepCheckpoints: 3,
  out: 'runs',
  distributed: { bucketCapMB: 25, syncBn: false, worldSize: 1, globalBatch: 0 },
};

/** One line of documentation per option, shown by `goodsrec train --help`. */
export const CONFIG_DOCS: Record<string, string> = {
  'data.root': 'dataset folder (root/<split>/<class>/<img>) or manifest dataset root',
  'data.trainSplit': 'split to train on',
  'data.valSplit': "split to validate on ('' = none)",
  'data.fraction': 'fraction of the training split to use (stratified by class, from the seed)',
  'data.badFiles': "bad image files: 'skip' (reported, counted) or 'fail'",
  'data.workers': 'parallel decode/augment workers (0 = automatic)',
  'data.cacheMB':
    'keep decoded training images in memory up to this many MiB (0 = off; faster epochs after the first, costs memory)',
  'data.maxPixels': `pixels per image at most, from its header before decoding (decompression bombs; --max-pixels)`,
  'model.name': 'registered model (goodsrec models lists them)',
  'model.pretrained':
    "weights to start from: 'hf-hub:timm/resnet50.a1_in1k[@rev]', 'torchvision:resnet50[.IMAGENET1K_V1]', a file or folder",
  'model.dropRate': 'dropout before the classifier',
  'model.dropPathRate': 'stochastic depth rate',
  'model.head': "classifier head: 'linear', or 'wide' (features -> 4096 -> classes, the write-up's wider head)",
  'model.channelsLast': 'channels_last memory format',
  'model.embeddingDim': 'embedding width of the arcface/cosface heads',
  'model.bnNeck': 'BatchNorm1d after the embedding Linear (arcface/cosface)',
  'model.scale': 'logit scale s of the arcface/cosface heads',
  'model.margin': 'margin m (null: 0.5 for arcface, 0.35 for cosface)',
  'model.easyMargin': "ArcFace: margin only where cos > 0 (insightface's easy_margin)",
  'input.size': 'training and evaluation resolution',
  'input.testSize': "evaluation resolution (0 = input.size; a pretrained model's test_input_size sets it)",
  'input.resize':
    "'letterbox' (structure-retention: pad to square, then resize), 'squash' or 'center' (timm's center crop)",
  'input.interpolation': "evaluation resize filter: 'bilinear' or 'bicubic' (a pretrained model's config sets it)",
  'input.cropPct': 'eval: resize to size/cropPct, then center crop (0.875: 256 -> 224)',
  'input.mean': "normalisation mean [r,g,b] or 'dataset'",
  'input.std': "normalisation std [r,g,b] or 'dataset'",
  'augment.scale': 'RandomResizedCrop area range',
  'augment.ratio': 'RandomResizedCrop aspect range',
  'augment.hflip': 'horizontal flip probability',
  'augment.colorJitter': 'brightness/contrast/saturation jitter',
  'augment.cutout': 'Cutout square side in pixels (0 = off)',
  'augment.randomErasing': 'Random Erasing probability (0 = off)',
  'augment.autoAugment': "'rand-m9-mstd0.5-inc1' (RandAugment) or 'original' (AutoAugment); null = off",
  'optim.name': "'sgd' or 'adamw'",
  'optim.lr': 'learning rate at batch 128 (scaled linearly with the batch size)',
  'optim.momentum': 'SGD momentum',
  'optim.nesterov': 'Nesterov momentum',
  'optim.weightDecay': 'weight decay',
  'optim.noDecayBiasNorm': 'no weight decay on biases and norm weights',
  'schedule.epochs': 'epochs',
  'schedule.warmupEpochs': 'linear warmup epochs',
  'schedule.minLr': 'cosine annealing floor',
  'schedule.perIteration': 'update the learning rate every iteration instead of every epoch',
  'loss.labelSmoothing': 'label smoothing',
  'finetune.headOnlyEpochs':
    'first epochs in which only the classifier learns (trunk frozen, BatchNorm statistics kept)',
  'finetune.layerDecay': 'layer-wise lr decay: each depth below the classifier gets lr x this (1 = off)',
  'finetune.freezeBn': 'BatchNorm frozen: running statistics and affine parameters stay as loaded',
  batchSize: 'batch size per process (data-parallel: the global batch is this x processes)',
  accumulate: 'gradient accumulation steps',
  ema: 'EMA decay of the weights (0 = off)',
  classBalanced: 'class-balanced sampling for long-tailed data',
  amp: "mixed precision: 'auto' (fp16 on CUDA, off on CPU), 'off', 'bf16', 'fp16'",
  seed: 'seed for shuffling, augmentation and init',
  device: "'auto', 'cpu', 'cuda', 'cuda:N'",
  threads: 'compute threads (0 = all cores)',
  validateEvery: 'validate every N epochs',
  checkpointEvery: 'checkpoint every N epochs (the last epoch always)',
  checkpointEverySteps: 'also checkpoint every N steps inside an epoch (0 = off)',
  keepCheckpoints: 'periodic checkpoints kept (best and last always)',
  out: 'folder under which the run folder is created',
  'distributed.bucketCapMB': 'data-parallel gradient all-reduce bucket size in MiB (as DDP bucket_cap_mb)',
  'distributed.syncBn': 'data-parallel: BatchNorm over the global batch of all ranks (SyncBatchNorm; --sync-bn)',
  'distributed.worldSize': 'recorded by the trainer: processes that started the run (set by --nproc-per-node/--nnodes)',
  'distributed.globalBatch': 'recorded by the trainer: batchSize x accumulate x worldSize',
};

export class ConfigError extends Error {
  /** The option (dotted key) the error is about, when it is about one. */
  readonly key: string | undefined;
  constructor(message: string, key?: string) {
    super(message);
    this.name = 'ConfigError';
    this.key = key;
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge of plain objects; arrays and scalars replace. Unknown keys are errors. */
function merge(base: unknown, over: unknown, path: string, source: string): unknown {
  if (!isObject(base) || !isObject(over)) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const p = path ? `${path}.${k}` : k;
    if (!(k in base)) {
      const known = Object.keys(base).map((x) => (path ? `${path}.${x}` : x));
      const near = closestNames(p, configKeys());
      const hint = near.length
        ? `did you mean ${near.map((n) => `'${n}'`).join(' or ')}?`
        : `known here: ${known.join(', ')}`;
      throw new ConfigError(`${source}: unknown option '${p}' (${hint})`, p);
    }
    out[k] = merge(base[k], v, p, source);
  }
  return out;
}

/** Parses a `key=value` override; the value is read as YAML (numbers, booleans, lists, null). */
export function parseOverride(s: string): Record<string, unknown> {
  const eq = s.indexOf('=');
  if (eq <= 0) throw new ConfigError(`override '${s}': expected key=value, e.g. optim.lr=0.05`);
  const key = s.slice(0, eq).trim();
  const raw = s.slice(eq + 1);
  let value: unknown;
  try {
    value = parseYaml(raw) as Json;
  } catch {
    value = raw;
  }
  if (value === undefined) value = raw;
  const parts = key.split('.');
  const root: Record<string, unknown> = {};
  let cur = root;
  parts.forEach((p, i) => {
    if (i === parts.length - 1) cur[p] = value;
    else {
      const next: Record<string, unknown> = {};
      cur[p] = next;
      cur = next;
    }
  });
  return root;
}

export function loadConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`config file ${path}: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError(
      `config file ${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`,
    );
  }
  if (v === null || v === undefined) return {};
  if (!isObject(v)) throw new ConfigError(`config file ${path}: expected a mapping of options at the top level`);
  return v;
}

/** Resolves defaults <- file <- overrides (in order) and validates. */
export function resolveConfig(layers: { source: string; values: Record<string, unknown> }[]): TrainConfig {
  let cfg: unknown = structuredClone(DEFAULT_CONFIG);
  for (const l of layers) cfg = merge(cfg, l.values, '', l.source);
  validateConfig(cfg as TrainConfig);
  return cfg as TrainConfig;
}

function check(cond: boolean, key: string, expected: string, actual: unknown): void {
  if (!cond) throw new ConfigError(`option ${key}: expected ${expected} but received ${JSON.stringify(actual)}`, key);
}

export function validateConfig(c: TrainConfig): void {
  const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  const int = (v: unknown, min: number): boolean => Number.isInteger(v) && (v as number) >= min;
  check(typeof c.data.root === 'string' && c.data.root.length > 0, 'data.root', 'a dataset path (--data)', c.data.root);
  check(
    num(c.data.fraction) && c.data.fraction > 0 && c.data.fraction <= 1,
    'data.fraction',
    'a number in (0, 1]',
    c.data.fraction,
  );
  check(c.data.badFiles === 'skip' || c.data.badFiles === 'fail', 'data.badFiles', "'skip' or 'fail'", c.data.badFiles);
  check(int(c.data.workers, 0), 'data.workers', 'an integer >= 0', c.data.workers);
  // Run folders written before data.cacheMB existed: the cache was on (2 GiB); new runs default to off.
  c.data.cacheMB ??= 2048;
  check(num(c.data.cacheMB) && c.data.cacheMB >= 0, 'data.cacheMB', 'a number of MiB >= 0', c.data.cacheMB);
  c.data.maxPixels ??= DEFAULT_MAX_PIXELS; // run folders written before the option existed
  check(int(c.data.maxPixels, 1), 'data.maxPixels', 'an integer >= 1', c.data.maxPixels);
  check(typeof c.model.name === 'string' && c.model.name.length > 0, 'model.name', 'a model name', c.model.name);
  // Run folders written before model.head existed have none: the linear head.
  c.model.head ??= 'linear';
  check(
    ['linear', 'wide', 'arcface', 'cosface'].includes(c.model.head),
    'model.head',
    "'linear', 'wide', 'arcface' or 'cosface'",
    c.model.head,
  );
  // Run folders written before embedding heads existed: the defaults.
  c.model.embeddingDim ??= 512;
  c.model.bnNeck ??= true;
  c.model.scale ??= 30;
  c.model.margin ??= null;
  c.model.easyMargin ??= false;
  check(int(c.model.embeddingDim, 1), 'model.embeddingDim', 'an integer >= 1', c.model.embeddingDim);
  check(typeof c.model.bnNeck === 'boolean', 'model.bnNeck', 'true or false', c.model.bnNeck);
  check(num(c.model.scale) && c.model.scale > 0, 'model.scale', 'a number > 0', c.model.scale);
  check(
    c.model.margin === null || (num(c.model.margin) && c.model.margin >= 0 && c.model.margin < Math.PI / 2),
    'model.margin',
    'null or a number in [0, pi/2)',
    c.model.margin,
  );
  check(typeof c.model.easyMargin === 'boolean', 'model.easyMargin', 'true or false', c.model.easyMargin);
  check(int(c.input.size, 16), 'input.size', 'an integer >= 16', c.input.size);
  // Run folders written before input.testSize / finetune existed.
  c.input.testSize ??= 0;
  c.finetune ??= { headOnlyEpochs: 0, layerDecay: 1, freezeBn: false };
  check(
    c.input.testSize === 0 || int(c.input.testSize, 16),
    'input.testSize',
    '0 or an integer >= 16',
    c.input.testSize,
  );
  check(
    num(c.finetune.layerDecay) && c.finetune.layerDecay > 0 && c.finetune.layerDecay <= 1,
    'finetune.layerDecay',
    'a number in (0, 1]',
    c.finetune.layerDecay,
  );
  check(typeof c.finetune.freezeBn === 'boolean', 'finetune.freezeBn', 'true or false', c.finetune.freezeBn);
  check(
    ['letterbox', 'squash', 'center'].includes(c.input.resize),
    'input.resize',
    "'letterbox', 'squash' or 'center'",
    c.input.resize,
  );
  // Run folders written before input.interpolation existed resized bilinearly.
  c.input.interpolation ??= 'bilinear';
  check(
    c.input.interpolation === 'bilinear' || c.input.interpolation === 'bicubic',
    'input.interpolation',
    "'bilinear' or 'bicubic'",
    c.input.interpolation,
  );
  check(
    num(c.input.cropPct) && c.input.cropPct > 0 && c.input.cropPct <= 1,
    'input.cropPct',
    'a number in (0, 1]',
    c.input.cropPct,
  );
  for (const k of ['mean', 'std'] as const) {
    const v = c.input[k];
    check(
      v === 'dataset' || (Array.isArray(v) && v.length === 3 && v.every(num)),
      `input.${k}`,
      "'dataset' or [r, g, b]",
      v,
    );
  }
  check(
    Array.isArray(c.augment.scale) && c.augment.scale.length === 2 && c.augment.scale.every(num),
    'augment.scale',
    '[min, max]',
    c.augment.scale,
  );
  check(
    Array.isArray(c.augment.ratio) && c.augment.ratio.length === 2 && c.augment.ratio.every(num),
    'augment.ratio',
    '[min, max]',
    c.augment.ratio,
  );
  check(
    num(c.augment.hflip) && c.augment.hflip >= 0 && c.augment.hflip <= 1,
    'augment.hflip',
    'a probability',
    c.augment.hflip,
  );
  check(
    num(c.augment.colorJitter) && c.augment.colorJitter >= 0,
    'augment.colorJitter',
    'a number >= 0',
    c.augment.colorJitter,
  );
  check(int(c.augment.cutout, 0), 'augment.cutout', 'an integer >= 0', c.augment.cutout);
  check(
    num(c.augment.randomErasing) && c.augment.randomErasing >= 0 && c.augment.randomErasing <= 1,
    'augment.randomErasing',
    'a probability',
    c.augment.randomErasing,
  );
  check(
    c.augment.autoAugment === null || typeof c.augment.autoAugment === 'string',
    'augment.autoAugment',
    'a policy string or null',
    c.augment.autoAugment,
  );
  check(c.optim.name === 'sgd' || c.optim.name === 'adamw', 'optim.name', "'sgd' or 'adamw'", c.optim.name);
  check(num(c.optim.lr) && c.optim.lr > 0, 'optim.lr', 'a number > 0', c.optim.lr);
  check(
    num(c.optim.momentum) && c.optim.momentum >= 0 && c.optim.momentum < 1,
    'optim.momentum',
    'a number in [0, 1)',
    c.optim.momentum,
  );
  check(
    num(c.optim.weightDecay) && c.optim.weightDecay >= 0,
    'optim.weightDecay',
    'a number >= 0',
    c.optim.weightDecay,
  );
  check(int(c.schedule.epochs, 1), 'schedule.epochs', 'an integer >= 1', c.schedule.epochs);
  check(
    num(c.schedule.warmupEpochs) && c.schedule.warmupEpochs >= 0 && c.schedule.warmupEpochs < c.schedule.epochs,
    'schedule.warmupEpochs',
    'a number in [0, epochs)',
    c.schedule.warmupEpochs,
  );
  check(num(c.schedule.minLr) && c.schedule.minLr >= 0, 'schedule.minLr', 'a number >= 0', c.schedule.minLr);
  check(
    int(c.finetune.headOnlyEpochs, 0) && c.finetune.headOnlyEpochs < c.schedule.epochs,
    'finetune.headOnlyEpochs',
    'an integer in [0, epochs)',
    c.finetune.headOnlyEpochs,
  );
  check(
    num(c.loss.labelSmoothing) && c.loss.labelSmoothing >= 0 && c.loss.labelSmoothing < 1,
    'loss.labelSmoothing',
    'a number in [0, 1)',
    c.loss.labelSmoothing,
  );
  check(int(c.batchSize, 1), 'batchSize', 'an integer >= 1', c.batchSize);
  check(int(c.accumulate, 1), 'accumulate', 'an integer >= 1', c.accumulate);
  check(num(c.ema) && c.ema >= 0 && c.ema < 1, 'ema', 'a decay in [0, 1)', c.ema);
  check(['auto', 'off', 'bf16', 'fp16'].includes(c.amp), 'amp', "'auto', 'off', 'bf16' or 'fp16'", c.amp);
  check(int(c.seed, 0), 'seed', 'an integer >= 0', c.seed);
  check(
    typeof c.device === 'string' && /^(auto|cpu|cuda(:\d+)?)$/.test(c.device),
    'device',
    "'auto', 'cpu', 'cuda' or 'cuda:N'",
    c.device,
  );
  check(int(c.threads, 0), 'threads', 'an integer >= 0', c.threads);
  check(int(c.validateEvery, 0), 'validateEvery', 'an integer >= 0', c.validateEvery);
  check(int(c.checkpointEvery, 1), 'checkpointEvery', 'an integer >= 1', c.checkpointEvery);
  check(int(c.checkpointEverySteps, 0), 'checkpointEverySteps', 'an integer >= 0', c.checkpointEverySteps);
  check(int(c.keepCheckpoints, 1), 'keepCheckpoints', 'an integer >= 1', c.keepCheckpoints);
}

/** The learning rate actually used: the recipe's lr is given for batch 128. */
export function scaledLr(c: TrainConfig): number {
  // The linear scaling rule over the global batch (every data-parallel process adds batchSize).
  return (c.optim.lr * c.batchSize * c.accumulate * (c.distributed?.worldSize ?? 1)) / 128;
}

/** Every option as [dotted key, default value]. */
function flatDefaults(): [string, unknown][] {
  const flat: [string, unknown][] = [];
  const walk = (o: unknown, prefix: string): void => {
    if (isObject(o)) for (const [k, v] of Object.entries(o)) walk(v, prefix ? `${prefix}.${k}` : k);
    else flat.push([prefix, o]);
  };
  walk(DEFAULT_CONFIG, '');
  return flat;
}

/** Every option's dotted key (data.root, optim.lr, ...). */
export function configKeys(): string[] {
  return flatDefaults().map(([k]) => k);
}

/** Text for --help: every option with its default. */
export function configHelp(): string {
  const flat = flatDefaults();
  const w = Math.max(...flat.map(([k]) => k.length));
  return flat.map(([k, v]) => `  ${k.padEnd(w)}  ${CONFIG_DOCS[k] ?? ''} (default ${JSON.stringify(v)})`).join('\n');
}

/** createModel options of the configured head (the embedding head's settings only for arcface/cosface). */
export function headOptions(m: TrainConfig['model']): {
  head: TrainConfig['model']['head'];
  embeddingDim?: number;
  bnNeck?: boolean;
  scale?: number;
} {
  return m.head === 'arcface' || m.head === 'cosface'
    ? { head: m.head, embeddingDim: m.embeddingDim, bnNeck: m.bnNeck, scale: m.scale }
    : { head: m.head ?? 'linear' };
}

/** The margin loss of an embedding head, or null for a softmax head. */
export function marginOptions(
  c: TrainConfig,
): { type: 'arcface' | 'cosface'; scale: number; margin: number; easyMargin: boolean; labelSmoothing: number } | null {
  const m = c.model;
  if (m.head !== 'arcface' && m.head !== 'cosface') return null;
  return {
    type: m.head,
    scale: m.scale,
    margin: m.margin ?? (m.head === 'arcface' ? 0.5 : 0.35),
    easyMargin: m.easyMargin,
    labelSmoothing: c.loss.labelSmoothing,
  };
}
