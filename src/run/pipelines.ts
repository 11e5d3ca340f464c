// The run's training and evaluation pre-processing, built from its config: the trainer, evaluation,
// prediction, serving, the tests and the benches all call these, so the ops and their order are written
// down once. The numbers (size, mean, std, interpolation, crop) come from the run's config, which a
// pretrained model's data config fills in (pretrained-cfg.ts).
import type { ChannelStats, Interpolation, PipelineConfig, TransformOp, Triple } from '../data/index.js';
import type { ResizeMode, TrainConfig } from './config.js';
import type { PretrainedRecord } from './pretrained-cfg.js';

/** preprocess.json: everything evaluation needs to reproduce the run's input. */
export interface PreprocessConfig {
  size: number;
  resize: ResizeMode;
  cropPct: number;
  /** Resize filter (absent in run folders written before it existed: bilinear). */
  interpolation?: Interpolation;
  mean: Triple;
  std: Triple;
  /** Where the weights came from and their own data config (informational: the fields above rule). */
  pretrained?: PretrainedRecord;
}

/**
 * Evaluation: resize to size / cropPct (letterbox, squash, or the shorter side for 'center'), center
 * crop size, normalize; `maxPixels`: --max-pixels.
 */
export function evalPipeline(p: PreprocessConfig, maxPixels?: number): PipelineConfig {
  const resized = Math.round(p.size / p.cropPct);
  const interpolation = p.interpolation ?? 'bilinear';
  // Written only when not bilinear, so pipelines of older runs stay the same objects.
  const filter = interpolation === 'bilinear' ? {} : { interpolation };
  const first: TransformOp =
    p.resize === 'letterbox'
      ? { op: 'letterbox', size: resized, fill: 'black', ...filter }
      : { op: 'resize', size: resized, mode: p.resize === 'center' ? 'shorter' : 'squash', ...filter };
  return {
    ops: [first, { op: 'centerCrop', size: p.size }, { op: 'normalize', mean: p.mean, std: p.std }],
    fastDecode: true,
    ...(maxPixels !== undefined ? { maxPixels } : {}),
  };
}

/** The config's own mean/std; an error when it asks for the dataset's (measure them and pass `norm`). */
export function configNormalization(c: TrainConfig): ChannelStats {
  const { mean, std } = c.input;
  if (mean === 'dataset' || std === 'dataset') {
    throw new Error(
      "input.mean/std 'dataset': compute the training split's statistics (computeChannelStats) " + 'and pass them',
    );
  }
  return { mean: mean as Triple, std: std as Triple };
}

/**
 * Training: [letterbox], RandomResizedCrop, flip, ColorJitter, [AutoAugment | RandAugment], normalize,
 * [Cutout], [Random Erasing]. `norm` replaces 'dataset' statistics (default: the config's numbers).
 */
export function trainPipeline(c: TrainConfig, norm: ChannelStats = configNormalization(c)): PipelineConfig {
  const a = c.augment;
  const ops: TransformOp[] = [];
  if (c.input.resize === 'letterbox') ops.push({ op: 'letterbox', fill: 'black' });
  ops.push({ op: 'randomResizedCrop', size: c.input.size, scale: a.scale, ratio: a.ratio });
  if (a.hflip > 0) ops.push({ op: 'hflip', p: a.hflip });
  const j = a.colorJitter;
  if (j > 0) ops.push({ op: 'colorJitter', brightness: j, contrast: j, saturation: j });
  if (a.autoAugment) {
    const original = a.autoAugment === 'original' || a.autoAugment === 'imagenet';
    if (original) ops.push({ op: 'autoAugment', policy: 'imagenet' });
    else ops.push({ op: 'randAugment', config: a.autoAugment });
  }
  ops.push({ op: 'normalize', mean: norm.mean, std: norm.std });
  if (a.cutout > 0) ops.push({ op: 'cutout', length: a.cutout });
  if (a.randomErasing > 0) ops.push({ op: 'randomErasing', p: a.randomErasing, mode: 'pixel' });
  return { ops, fastDecode: true, maxPixels: c.data.maxPixels };
}

/** The run's evaluation pre-processing (preprocess.json) from its config and normalisation. */
export function preprocessFromConfig(
  c: TrainConfig,
  norm: ChannelStats = configNormalization(c),
  pretrained?: PretrainedRecord,
): PreprocessConfig {
  return {
    size: c.input.testSize || c.input.size,
    resize: c.input.resize,
    cropPct: c.input.cropPct,
    interpolation: c.input.interpolation ?? 'bilinear',
    mean: norm.mean,
    std: norm.std,
    ...(pretrained ? { pretrained } : {}),
  };
}
