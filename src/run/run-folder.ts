// A run folder's own description (config.json, classes.json, preprocess.json, versions.json,
// dataset.json): written once by the trainer, read by --resume, eval, predict, fixres, export and serve
// to rebuild the model and its pre-processing.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../util/atomic.js';
import type { TrainConfig } from './config.js';
import type { PreprocessConfig } from './pipelines.js';

/** What a run folder stores besides checkpoints. */
export interface RunInfo {
  config: TrainConfig;
  classes: string[];
  preprocess: PreprocessConfig;
}

/** One JSON file of a run folder; errors name the file. */
export function readRunJson<X>(runDir: string, file: string): X {
  const path = join(runDir, file);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as X;
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

export function readRunInfo(runDir: string): RunInfo {
  return {
    config: readRunJson<TrainConfig>(runDir, 'config.json'),
    classes: readRunJson<string[]>(runDir, 'classes.json'),
    preprocess: readRunJson<PreprocessConfig>(runDir, 'preprocess.json'),
  };
}

/** Everything a new run folder records before its first step. */
export interface RunFiles extends RunInfo {
  /** Library and machine versions the run started with. */
  versions: Record<string, unknown>;
  /** The dataset: root, class and sample counts, splits. */
  dataset: Record<string, unknown>;
}

/** Writes the run's description, each file atomically (config.json again: it now holds the final values). */
export function writeRunFiles(runDir: string, f: RunFiles): void {
  writeJsonAtomic(join(runDir, 'config.json'), f.config);
  writeJsonAtomic(join(runDir, 'classes.json'), f.classes);
  writeJsonAtomic(join(runDir, 'preprocess.json'), f.preprocess);
  writeJsonAtomic(join(runDir, 'versions.json'), f.versions);
  writeJsonAtomic(join(runDir, 'dataset.json'), f.dataset);
}
