// The names inside a run folder and a checkpoint folder: the one place they are spelled. Code
// outside src/run asks a RunFolder (run-folder.ts) or the checkpoint functions for a path.
import { join } from 'node:path';

/** The run folder's own files, by role. */
export const RUN_FILE = {
  /** The resolved run config; written first, it is what makes a folder a run folder. */
  config: 'config.json',
  classes: 'classes.json',
  preprocess: 'preprocess.json',
  versions: 'versions.json',
  dataset: 'dataset.json',
  /** One JSON record per line: epochs, every 50th step, FixRes sizes. */
  metrics: 'metrics.jsonl',
  badFiles: 'bad-files.json',
  skippedInputs: 'skipped-inputs.json',
  /** FixRes' summary (sizes tried, the one chosen). */
  fixres: 'fixres.json',
  /** Pointers naming a checkpoint folder. */
  latest: 'latest.json',
  best: 'best.json',
} as const;

export type RunFileRole = keyof typeof RUN_FILE;
export type PointerName = 'latest' | 'best';

/** The folder of checkpoint folders. */
export const CHECKPOINTS_DIR = 'checkpoints';

/** The files of one checkpoint folder. */
export const CHECKPOINT_FILE = {
  model: 'model.safetensors',
  ema: 'ema.safetensors',
  optimizer: 'optimizer.safetensors',
  state: 'state.json',
} as const;

/** The evaluation file `goodsrec eval` writes into the run folder by default. */
export function evalFileName(split: string, kind: 'classifier' | 'gallery'): string {
  return kind === 'gallery' ? `eval-${split}-gallery.json` : `eval-${split}.json`;
}

/** A training checkpoint's folder name: the epochs done, and the steps into the next one when saved mid-epoch. */
export function checkpointName(epoch: number, step: number): string {
  const e = `epoch-${String(epoch).padStart(4, '0')}`;
  return step === 0 ? e : `${e}-step-${String(step).padStart(6, '0')}`;
}

/** FixRes: its result folder inside the source run (one size, or a sweep) and the checkpoint it writes there. */
export function fixresFolderName(sizes: readonly number[]): string {
  return `fixres-${sizes.length === 1 ? sizes[0] : 'sweep'}`;
}
export function fixresCheckpointName(size: number): string {
  return `fixres-${size}`;
}

/** Periodic checkpoint names (what checkpointName writes); averages and FixRes results are other names. */
export const PERIODIC_CHECKPOINT = /^epoch-\d+(-step-\d+)?$/;

/** The weights file of a checkpoint folder (the EMA weights or the trained ones). */
export function checkpointWeightsFile(checkpointDir: string, ema: boolean): string {
  return join(checkpointDir, ema ? CHECKPOINT_FILE.ema : CHECKPOINT_FILE.model);
}
