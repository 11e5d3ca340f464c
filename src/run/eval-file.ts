// The evaluation file (`goodsrec eval --out`, default <run>/eval-<split>.json): written by the eval
// command, read by the HTML error report.
import { readFileSync } from 'node:fs';
import type { EvalMetrics } from '../eval/metrics.js';
import type { SamplePrediction } from '../eval/evaluate.js';
import { writeJsonAtomic } from '../util/atomic.js';
import type { PreprocessConfig } from './pipelines.js';

/** One evaluation of a model on a dataset split (the fields the report needs, then the rest). */
export interface EvalFile {
  model: string;
  checkpoint: string | null;
  data: string;
  split: string;
  /** The pre-processing evaluated with (older files and ensembles may lack parts). */
  preprocess?: Partial<PreprocessConfig> & { size: number };
  tta?: string[];
  classes: string[];
  metrics: EvalMetrics;
  predictions: SamplePrediction[];
  badFiles?: unknown[];
  skipped?: unknown[];
  seconds?: number;
}

/** Writes an eval file atomically. */
export function writeEvalFile(path: string, ev: EvalFile): void {
  writeJsonAtomic(path, ev);
}

/** Reads an eval file; errors name the file and what is missing. */
export function readEvalFile(path: string): EvalFile {
  let v: EvalFile;
  try {
    v = JSON.parse(readFileSync(path, 'utf8')) as EvalFile;
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  if (!v.metrics || !Array.isArray(v.classes) || !Array.isArray(v.predictions) || !Array.isArray(v.metrics.confusion)) {
    throw new Error(
      `${path}: not an evaluation written by goodsrec eval ` + '(needs classes, metrics with confusion, predictions)',
    );
  }
  return v;
}
