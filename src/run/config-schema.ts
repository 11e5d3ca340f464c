// Every training option, once: its kind (what it accepts), default, one-line doc, what an older run
// folder's config.json without it means, and the `goodsrec train` flag that sets it. The TypeScript type
// (TrainConfig), DEFAULT_CONFIG, --help, the validation of every layer, the migration of old run folders
// and train's config flags are all derived from this table (src/run/config.ts, src/cli/config-flags.ts).
// A new option is one entry here, plus the code that uses it.
import { DEFAULT_MAX_PIXELS } from '../data/limits.js';
import { DEVICE_EXPECTED, DEVICE_PATTERN } from '../tensor/device.js';
import {
  bool,
  either,
  int,
  listOf,
  nullable,
  num,
  oneOf,
  path,
  str,
  type KindValue,
  type ValueKind,
} from '../util/value-kinds.js';

/** `device`: 'auto', 'cpu', 'cuda', 'cuda:N' (the same in the config and every command's --device). */
export const DEVICE_KIND = str({ pattern: DEVICE_PATTERN, expected: DEVICE_EXPECTED });

/**
 * What a stored config (an older run folder's config.json) that lacks the option means: 'default', or
 * `{ value }`, the value that keeps that run's old behaviour. Options without it are in every
 * config.json ever written, so a config.json without one of them is an error.
 */
export type Migration<V = unknown> = 'default' | { value: V };

export interface ConfigEntry {
  kind: ValueKind;
  default: unknown;
  /** One line for --help. */
  doc: string;
  migrate?: Migration;
  /** The default is a placeholder: the option must be given (a missing one is named with its flag). */
  required?: true;
  /** Must be below the value of this other option (e.g. warmup epochs < epochs). */
  lessThan?: string;
  /** The `goodsrec train` flag that sets it; `exists`: the flag's path must exist. */
  flag?: { name: string; exists?: 'file' | 'dir' | 'any' };
}

const prob = num({ min: 0, max: 1 });

export const CONFIG_SCHEMA = {
  'data.root': {
    kind: path,
    default: '',
    required: true,
    doc: 'dataset folder (root/<split>/<class>/<img>) or manifest dataset root',
    flag: { name: 'data', exists: 'any' },
  },
  'data.trainSplit': { kind: str({ nonEmpty: true }), default: 'train', doc: 'split to train on' },
  'data.valSplit': { kind: str(), default: 'test', doc: "split to validate on ('' = none)" },
  'data.fraction': {
    kind: num({ above: 0, max: 1 }),
    default: 1,
    doc: 'fraction of the training split to use (stratified by class, from the seed)',
  },
  'data.badFiles': {
    kind: oneOf(['skip', 'fail']),
    default: 'skip',
    doc: "bad image files: 'skip' (reported, counted) or 'fail'",
  },
  'data.workers': { kind: int({ min: 0 }), default: 0, doc: 'parallel decode/augment workers (0 = automatic)' },
  'data.cacheMB': {
    kind: num({ min: 0 }),
    default: 0,
    // Run folders written before the option existed had the cache on (2 GiB); new runs default to off.
    migrate: { value: 2048 },
    doc: 'keep decoded training images in memory up to this many MiB (0 = off; faster epochs after the first, costs memory)',
  },
  'data.maxPixels': {
    kind: int({ min: 1 }),
    default: DEFAULT_MAX_PIXELS,
    migrate: 'default',
    doc: 'pixels per image at most, from its header before decoding (decompression bombs)',
    flag: { name: 'max-pixels' },
  },
  'model.name': {
    kind: str({ nonEmpty: true, expected: 'a model name' }),
    default: 'resnet50',
    doc: 'registered model (goodsrec models lists them)',
    flag: { name: 'model' },
  },
  'model.pretrained': {
    kind: nullable(str({ nonEmpty: true })),
    default: null,
    doc: "weights to start from: 'hf-hub:timm/resnet50.a1_in1k[@rev]', 'torchvision:resnet50[.IMAGENET1K_V1]', a file or folder",
    flag: { name: 'pretrained' },
  },
  'model.dropRate': { kind: num({ min: 0, below: 1 }), default: 0, doc: 'dropout before the classifier' },
  'model.dropPathRate': { kind: num({ min: 0, below: 1 }), default: 0, doc: 'stochastic depth rate' },
  'model.head': {
    kind: oneOf(['linear', 'wide', 'arcface', 'cosface']),
    default: 'linear',
    migrate: 'default',
    doc: "classifier head: 'linear', 'wide' (features -> 4096 -> classes, the write-up's wider head), or an embedding head 'arcface' / 'cosface'",
    flag: { name: 'head' },
  },
  'model.embeddingDim': {
    kind: int({ min: 1 }),
    default: 512,
    migrate: 'default',
    doc: 'embedding width of the arcface/cosface heads',
    flag: { name: 'embedding-dim' },
  },
  'model.bnNeck': {
    kind: bool,
    default: true,
    migrate: 'default',
    doc: 'BatchNorm1d after the embedding Linear (arcface/cosface)',
  },
  'model.scale': {
    kind: num({ above: 0 }),
    default: 30,
    migrate: 'default',
    doc: 'logit scale s of the arcface/cosface heads',
  },
  'model.margin': {
    kind: nullable(num({ min: 0, below: Math.PI / 2 })),
    default: null,
    migrate: 'default',
    doc: 'margin m in radians (null: 0.5 for arcface, 0.35 for cosface)',
  },
  'model.easyMargin': {
    kind: bool,
    default: false,
    migrate: 'default',
    doc: "ArcFace: margin only where cos > 0 (insightface's easy_margin)",
  },
  'model.channelsLast': { kind: bool, default: false, doc: 'channels_last memory format' },
  'input.size': {
    kind: int({ min: 16 }),
    default: 224,
    doc: 'training and evaluation resolution',
    flag: { name: 'size' },
  },
  'input.testSize': {
    kind: either(int({ min: 0, max: 0 }), int({ min: 16 })),
    default: 0,
    migrate: 'default',
    doc: "evaluation resolution (0 = input.size; a pretrained model's test_input_size sets it)",
  },
  'input.resize': {
    kind: oneOf(['letterbox', 'squash', 'center']),
    default: 'letterbox',
    doc: "'letterbox' (structure-retention: pad to square, then resize), 'squash' or 'center' (timm's center crop)",
  },
  'input.interpolation': {
    kind: oneOf(['bilinear', 'bicubic']),
    default: 'bilinear',
    migrate: 'default',
    doc: "evaluation resize filter: 'bilinear' or 'bicubic' (a pretrained model's config sets it)",
  },
  'input.cropPct': {
    kind: num({ above: 0, max: 1 }),
    default: 0.875,
    doc: 'eval: resize to size/cropPct, then center crop (0.875: 256 -> 224)',
  },
  // The recipe's statistics (RP2K, from the competition code); the only copy of these numbers.
  'input.mean': {
    kind: either(oneOf(['dataset']), listOf(num(), { length: 3 })),
    default: [0.4716, 0.425, 0.354],
    doc: "normalisation mean [r, g, b], or 'dataset' (computed from the training split)",
  },
  'input.std': {
    kind: either(oneOf(['dataset']), listOf(num({ above: 0 }), { length: 3 })),
    default: [0.2178, 0.2079, 0.1935],
    doc: "normalisation std [r, g, b], or 'dataset' (computed from the training split)",
  },
  'augment.scale': {
    kind: listOf(num({ above: 0, max: 1 }), { length: 2 }),
    default: [0.08, 1],
    doc: 'RandomResizedCrop area range [min, max]',
  },
  'augment.ratio': {
    kind: listOf(num({ above: 0 }), { length: 2 }),
    default: [3 / 4, 4 / 3],
    doc: 'RandomResizedCrop aspect range [min, max]',
  },
  'augment.hflip': { kind: prob, default: 0.5, doc: 'horizontal flip probability' },
  'augment.colorJitter': { kind: num({ min: 0 }), default: 0.4, doc: 'brightness/contrast/saturation jitter' },
  'augment.cutout': { kind: int({ min: 0 }), default: 14, doc: 'Cutout square side in pixels (0 = off)' },
  'augment.randomErasing': { kind: prob, default: 0, doc: 'Random Erasing probability (0 = off)' },
  'augment.autoAugment': {
    kind: nullable(str({ nonEmpty: true, expected: 'a policy name' })),
    default: null,
    doc: "'rand-m9-mstd0.5-inc1' (RandAugment, timm notation) or 'original' (AutoAugment); null = off",
  },
  'optim.name': { kind: oneOf(['sgd', 'adamw']), default: 'sgd', doc: 'optimizer' },
  'optim.lr': {
    kind: num({ above: 0 }),
    default: 0.1,
    doc: 'learning rate at batch 128 (scaled linearly with the global batch size)',
    flag: { name: 'lr' },
  },
  'optim.momentum': { kind: num({ min: 0, below: 1 }), default: 0.9, doc: 'SGD momentum' },
  'optim.nesterov': { kind: bool, default: false, doc: 'Nesterov momentum' },
  'optim.weightDecay': { kind: num({ min: 0 }), default: 1e-4, doc: 'weight decay' },
  'optim.noDecayBiasNorm': { kind: bool, default: true, doc: 'no weight decay on biases and norm weights' },
  'schedule.epochs': { kind: int({ min: 1 }), default: 75, doc: 'epochs', flag: { name: 'epochs' } },
  'schedule.warmupEpochs': {
    kind: num({ min: 0 }),
    default: 0,
    lessThan: 'schedule.epochs',
    doc: 'linear warmup epochs',
  },
  'schedule.minLr': { kind: num({ min: 0 }), default: 1e-6, doc: 'cosine annealing floor' },
  'schedule.perIteration': {
    kind: bool,
    default: false,
    doc: 'update the learning rate every iteration instead of every epoch',
  },
  'loss.labelSmoothing': { kind: num({ min: 0, below: 1 }), default: 0.1, doc: 'label smoothing' },
  'loss.logitAdjust': {
    kind: num({ min: 0, max: 10 }),
    default: 0,
    migrate: 'default',
    doc: 'logit-adjusted loss for a long tail (Menon et al. 2021): tau x log(class prior of the training photos) added to the logits in training only (0 = off, 1 = the paper)',
  },
  'finetune.headOnlyEpochs': {
    kind: int({ min: 0 }),
    default: 0,
    migrate: 'default',
    lessThan: 'schedule.epochs',
    doc: 'first epochs in which only the classifier learns (trunk frozen, BatchNorm statistics kept)',
  },
  'finetune.layerDecay': {
    kind: num({ above: 0, max: 1 }),
    default: 1,
    migrate: 'default',
    doc: 'layer-wise lr decay: each depth below the classifier gets lr x this (1 = off)',
  },
  'finetune.freezeBn': {
    kind: bool,
    default: false,
    migrate: 'default',
    doc: 'BatchNorm frozen: running statistics and affine parameters stay as loaded',
  },
  batchSize: {
    kind: int({ min: 1 }),
    default: 128,
    doc: 'batch size per process (data-parallel: the global batch is this x processes)',
    flag: { name: 'batch-size' },
  },
  accumulate: { kind: int({ min: 1 }), default: 1, doc: 'gradient accumulation: an optimizer step every N batches' },
  ema: { kind: num({ min: 0, below: 1 }), default: 0, doc: 'EMA decay of the weights (0 = off)' },
  classBalanced: { kind: bool, default: false, doc: 'class-balanced sampling for long-tailed data' },
  amp: {
    kind: oneOf(['auto', 'off', 'bf16', 'fp16']),
    default: 'auto',
    doc: "mixed precision: 'auto' (fp16 on CUDA; bf16 on CPUs with AVX512-BF16 or AMX, else off), 'off', 'bf16', 'fp16'",
    flag: { name: 'amp' },
  },
  seed: { kind: int({ min: 0 }), default: 0, doc: 'seed for shuffling, augmentation and init', flag: { name: 'seed' } },
  device: {
    kind: DEVICE_KIND,
    default: 'auto',
    doc: 'compute device (auto: CUDA when available)',
    flag: { name: 'device' },
  },
  threads: { kind: int({ min: 0 }), default: 0, doc: 'compute threads (0 = all cores)' },
  validateEvery: { kind: int({ min: 0 }), default: 1, doc: 'validate every N epochs (0 = never)' },
  checkpointEvery: { kind: int({ min: 1 }), default: 5, doc: 'checkpoint every N epochs (the last epoch always)' },
  checkpointEverySteps: {
    kind: int({ min: 0 }),
    default: 0,
    doc: 'also checkpoint every N steps inside an epoch (0 = off)',
  },
  keepCheckpoints: { kind: int({ min: 1 }), default: 3, doc: 'periodic checkpoints kept (best and last always)' },
  out: { kind: path, default: 'runs', doc: 'folder under which the run folder is created', flag: { name: 'out' } },
  'distributed.bucketCapMB': {
    kind: num({ above: 0 }),
    default: 25,
    migrate: 'default',
    doc: 'data-parallel gradient all-reduce bucket size in MiB (as DDP bucket_cap_mb)',
  },
  'distributed.syncBn': {
    kind: bool,
    default: false,
    migrate: 'default',
    doc: 'data-parallel: BatchNorm over the global batch of all ranks (SyncBatchNorm)',
    flag: { name: 'sync-bn' },
  },
  'distributed.worldSize': {
    kind: int({ min: 1 }),
    default: 1,
    migrate: 'default',
    doc: 'recorded by the trainer: processes that started the run (set by --nproc-per-node/--nnodes)',
  },
  'distributed.globalBatch': {
    kind: int({ min: 0 }),
    default: 0,
    migrate: 'default',
    doc: 'recorded by the trainer: batchSize x accumulate x worldSize (0 = not recorded yet)',
  },
} as const satisfies Record<string, ConfigEntry>;

export type ConfigSchema = typeof CONFIG_SCHEMA;
/** A dotted option key: 'data.root', 'optim.lr', 'batchSize', ... */
export type ConfigKey = keyof ConfigSchema;
/** The value type of an option. */
export type ConfigValue<K extends ConfigKey> = KindValue<ConfigSchema[K]['kind']>;

type SectionOf<K> = K extends `${infer S}.${string}` ? S : never;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
/** The nested shape of a table: 'a.b' keys become section a's option b; the others are top-level options. */
export type ConfigShape<S extends Record<string, { kind: unknown }>> = Simplify<
  {
    -readonly [K in keyof S as K extends `${string}.${string}` ? never : K]: KindValue<S[K]['kind']>;
  } & {
    -readonly [Sec in SectionOf<keyof S>]: {
      -readonly [K in keyof S as K extends `${Sec}.${infer R}` ? R : never]: KindValue<S[K]['kind']>;
    };
  }
>;

// Compile-time check: every default and migration value is of its option's kind.
type Frozen<T> = T extends readonly unknown[] ? { readonly [I in keyof T]: T[I] } : T;
type BadValues<S> = {
  [K in keyof S]: S[K] extends { kind: infer Kd; default: infer D }
    ? [D] extends [Frozen<KindValue<Kd>>]
      ? S[K] extends { migrate: { value: infer M } }
        ? [M] extends [Frozen<KindValue<Kd>>]
          ? never
          : K
        : never
      : K
    : K;
}[keyof S];
const valuesMatchKinds: [BadValues<ConfigSchema>] extends [never] ? true : BadValues<ConfigSchema> = true;
void valuesMatchKinds;
