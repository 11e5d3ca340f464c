// The recipe's pipelines for tests, built by the same functions the trainer uses (src/run/pipelines.ts)
// from a config: the defaults plus the options given.
import type { PipelineConfig } from '../../src/data/index.js';
import { resolveConfig, type TrainConfig } from '../../src/run/config.js';
import { evalPipeline, preprocessFromConfig, trainPipeline } from '../../src/run/pipelines.js';

/** A validated run config: DEFAULT_CONFIG with `values` layered over it (data.root is a placeholder). */
export function recipeConfig(values: Record<string, unknown> = {}): TrainConfig {
  return resolveConfig([
    { source: 'test', values: { data: { root: '(test)' } } },
    { source: 'test', values },
  ]);
}

/** The trainer's training pipeline for the config; full decoding unless fastDecode is asked for. */
export function recipeTrain(values: Record<string, unknown> = {}, fastDecode = false): PipelineConfig {
  return { ...trainPipeline(recipeConfig(values)), fastDecode };
}

/** The run's evaluation pipeline for the config; full decoding unless fastDecode is asked for. */
export function recipeEval(values: Record<string, unknown> = {}, fastDecode = false): PipelineConfig {
  return { ...evalPipeline(preprocessFromConfig(recipeConfig(values))), fastDecode };
}

/** AutoAugment / RandAugment as the tests name them. */
export const AUGMENT = { none: null, autoaugment: 'original', randaugment: 'rand-m9-mstd0.5-inc1' } as const;
