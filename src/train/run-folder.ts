// Reading a run folder's own description: what trainer --resume, eval,
// predict and fixres need to rebuild the model and its pre-processing.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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
