// goodsrec as a library: `import { createModel, train, predict, T } from 'goodsrec'`.
// Everything here is a re-export or a thin wrapper of the module that owns it; the
// command line (src/cli) is built on the same functions.
import { resolveConfig, type TrainConfig } from './run/config.js';
import { train as trainRun, type TrainOptions, type TrainResult } from './train/trainer.js';
import {
  disposeRecognizer,
  expandImagePaths,
  loadRecognizer,
  predictFiles,
  skippedPredictions,
  type LoadedRecognizer,
  type LoadOptions,
  type Prediction,
  type PredictOptions,
} from './eval/predictor.js';

// --- models -------------------------------------------------------------------------------
export {
  createModel,
  listModels,
  getModelCfg,
  registerModel,
  type CreateModelOptions,
  type ModelFactory,
  type CheckpointFilter,
} from './models/registry.js';
export { ClassifierModel, IMAGENET_MEAN, IMAGENET_STD, type ModelCfg } from './models/model.js';
export { countFlops, type FlopsCount } from './models/flops.js';

// --- engine -----------------------------------------------------------------------------------
/** The tensor engine (libtorch through goodsrec's addon): tensors, tidy() scopes, F functionals, autocast. */
export * as T from './tensor/index.js';
/** Modules with PyTorch's state-dict names. */
export * as nn from './nn/index.js';

// --- data ---------------------------------------------------------------------------------------
export { loadDataset, selectSplits, type Dataset, type Sample } from './data/dataset.js';

// --- the run folder -------------------------------------------------------------------------------------
export {
  evalPipeline,
  trainPipeline,
  preprocessFromConfig,
  type PreprocessConfig,
} from './run/pipelines.js';
export { readRunInfo, RunFolder, RunFolderGoneError, type RunInfo, type DatasetRecord } from './run/run-folder.js';
export {
  resolveCheckpoint,
  loadCheckpoint,
  listCheckpoints,
  CheckpointError,
  type LoadedCheckpoint,
} from './run/checkpoint.js';
export { averageCheckpoints } from './run/average.js';
export {
  readEvalFile,
  readAnyEvalFile,
  EVAL_FILE_FORMAT,
  type EvalFile,
  type AnyEvalFile,
  type ClassifierEvalFile,
  type GalleryEvalFile,
} from './run/eval-file.js';

// --- training -------------------------------------------------------------------------------------
export {
  DEFAULT_CONFIG,
  ConfigError,
  type TrainConfig,
  type AmpMode,
  type ResizeMode,
  type Interpolation,
} from './run/config.js';
export {
  TrainingDivergedError,
  type TrainOptions,
  type TrainResult,
  type TrainEvents,
  type EpochRecord,
} from './train/trainer.js';

/** A training configuration in which every section and option may be left out (the recipe's defaults fill it). */
export type TrainSettings = {
  [K in keyof TrainConfig]?: TrainConfig[K] extends object ? Partial<TrainConfig[K]> : TrainConfig[K];
};

/**
 * Trains a model into a new run folder (or continues one with `options.resume`) and resolves when
 * training ends. `settings` is layered over the recipe's defaults (DEFAULT_CONFIG) and validated,
 * as `goodsrec train --config` does; a bad option throws a ConfigError naming it.
 *
 * @example
 * const r = await train({ data: { root: 'photos/' }, model: { name: 'resnet18' }, schedule: { epochs: 5 } });
 * console.log(r.runDir, r.best?.top1);
 */
export function train(settings: TrainSettings, options: TrainOptions = {}): Promise<TrainResult> {
  const config = resolveConfig([{ source: 'train() settings', values: settings as Record<string, unknown> }]);
  return trainRun(config, options);
}

// --- evaluation and prediction -----------------------------------------------------------------------
export {
  evaluate,
  TTA_VIEWS,
  TTA_MEANS,
  type EvaluateOptions,
  type EvaluateResult,
  type SamplePrediction,
  type TtaView,
  type TtaMean,
} from './eval/evaluate.js';
export { type EvalMetrics, type ClassMetrics, formatMetrics } from './eval/metrics.js';
export {
  loadRecognizer,
  disposeRecognizer,
  type LoadedRecognizer,
  type LoadOptions,
  type Prediction,
  type PredictOptions,
} from './eval/predictor.js';

/**
 * Top-k predictions for image files and folders (folders are expanded to their images, sorted).
 * `model` is a run folder, a checkpoint folder or an ensemble file (loaded, used and freed here), or
 * a recognizer from loadRecognizer() (left loaded, for repeated calls). A file that cannot be read
 * gets an entry with `error` instead of stopping the others; so does a folder entry that is not a readable
 * image file (a dangling symlink, a FIFO, ...).
 *
 * @example
 * const [p] = await predict('runs/resnet50-20261126-101500', ['shelf.jpg'], { topK: 5 });
 * console.log(p.top[0].class, p.top[0].probability);
 */
export async function predict(
  model: string | LoadedRecognizer,
  inputs: readonly string[],
  options: PredictOptions & LoadOptions = {},
): Promise<Prediction[]> {
  const r = typeof model === 'string' ? loadRecognizer(model, { ...options, allowEnsemble: true }) : model;
  try {
    const walk = expandImagePaths(inputs);
    const preds = await predictFiles(r, walk.files, options);
    return [...preds, ...skippedPredictions(walk)];
  } finally {
    if (typeof model === 'string') disposeRecognizer(r);
  }
}

export { goodsrecVersion } from './util/version.js';
