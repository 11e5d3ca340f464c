// The recipe's training and evaluation pre-processing, built from a run's
// config. Evaluation, prediction and serving all call evalPipeline() so the
// pre-processing is the same code everywhere.
import type { PipelineConfig, TransformOp, Triple } from '../data/index.js';
import type { TrainConfig } from './config.js';
import type { PretrainedRecord } from './pretrained-cfg.js';

export interface PreprocessConfig {
  size: number;
  resize: 'letterbox' | 'squash';
  cropPct: number;
  mean: Triple;
  std: Triple;
  /** Where the weights came from and their own data config (informational: the fields above rule). */
  pretrained?: PretrainedRecord;
}

/** Evaluation: letterbox (or squash) to size/cropPct, center crop size, normalize; `maxPixels`: --max-pixels. */
export function evalPipeline(p: PreprocessConfig, maxPixels?: number): PipelineConfig {
  const resized = Math.round(p.size / p.cropPct);
  const first: TransformOp = p.resize === 'letterbox'
    ? { op: 'letterbox', size: resized, fill: 'black' }
    : { op: 'resize', size: resized, mode: 'squash' };
  return {
    ops: [first, { op: 'centerCrop', size: p.size }, { op: 'normalize', mean: p.mean, std: p.std }],
    fastDecode: true,
    ...(maxPixels !== undefined ? { maxPixels } : {}),
  };
}

/** Training: letterbox, RandomResizedCrop, flip, ColorJitter, [Auto/RandAugment], normalize, Cutout, [Random Erasing]. */
export function trainPipeline(c: TrainConfig, mean: Triple, std: Triple): PipelineConfig {
  const a = c.augment;
  const ops: TransformOp[] = [];
  if (c.input.resize === 'letterbox') ops.push({ op: 'letterbox', fill: 'black' });
  ops.push({ op: 'randomResizedCrop', size: c.input.size, scale: a.scale, ratio: a.ratio });
  if (a.hflip > 0) ops.push({ op: 'hflip', p: a.hflip });
  if (a.colorJitter > 0) ops.push({ op: 'colorJitter', brightness: a.colorJitter, contrast: a.colorJitter, saturation: a.colorJitter });
  if (a.autoAugment) {
    if (a.autoAugment === 'original' || a.autoAugment === 'imagenet') ops.push({ op: 'autoAugment', policy: 'imagenet' });
    else ops.push({ op: 'randAugment', config: a.autoAugment });
  }
  ops.push({ op: 'normalize', mean, std });
  if (a.cutout > 0) ops.push({ op: 'cutout', length: a.cutout });
  if (a.randomErasing > 0) ops.push({ op: 'randomErasing', p: a.randomErasing, mode: 'pixel' });
  return { ops, fastDecode: true, maxPixels: c.data.maxPixels };
}
