// Ensembles of trained recognizers (each with its own architecture, resolution
// and pre-processing, as trained); checkpoint averaging lives with the run folder (src/run/average.ts).
// An ensemble is saved as a small JSON unit that `goodsrec predict` loads.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type * as T from '../tensor/index.js';
import type { Dataset } from '../data/index.js';
import { evalPipeline, type PreprocessConfig } from '../run/pipelines.js';
import type { ClassifierModel } from '../models/index.js';
import { writeJsonAtomic } from '../util/atomic.js';
import {
  evaluate,
  type EvaluateOptions,
  type EvaluateResult,
  type SamplePrediction,
  type TtaMean,
  type TtaView,
} from './evaluate.js';
import { MetricsAccumulator, softmaxRow, topKPrediction, type EvalMetrics } from './metrics.js';

export const ENSEMBLE_FORMAT = 'goodsrec-ensemble-1';

export interface EnsembleSpec {
  format: typeof ENSEMBLE_FORMAT;
  /** Members: checkpoint folders (absolute), the run they came from, and weights. */
  members: { run: string | null; checkpoint: string; weight: number }[];
  /** Average the members' logits or their probabilities. */
  mean: TtaMean;
  /** Test-time views each member applies (optional). */
  tta?: TtaView[];
  ttaMean?: TtaMean;
}

/** The part of a loaded recognizer an ensemble needs (see predictor.ts LoadedRecognizer). */
export interface EnsembleMember {
  model: ClassifierModel;
  classes: string[];
  preprocess: PreprocessConfig;
  device: T.Device;
  checkpointDir: string;
  runDir: string | undefined;
  modelName: string;
  /** --max-pixels of its evaluation pipeline. */
  maxPixels?: number;
}

/** True when path is an ensemble file (JSON with the ensemble format). */
export function isEnsembleFile(path: string): boolean {
  if (!existsSync(path) || statSync(path).isDirectory() || !path.endsWith('.json')) return false;
  try {
    return (JSON.parse(readFileSync(path, 'utf8')) as { format?: unknown }).format === ENSEMBLE_FORMAT;
  } catch {
    return false;
  }
}

export function readEnsemble(path: string): EnsembleSpec {
  let v: EnsembleSpec;
  try {
    v = JSON.parse(readFileSync(path, 'utf8')) as EnsembleSpec;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (v.format !== ENSEMBLE_FORMAT)
    throw new Error(`${path}: not a goodsrec ensemble (format ${JSON.stringify(v.format)})`);
  if (!Array.isArray(v.members) || v.members.length === 0) throw new Error(`${path}: the ensemble lists no members`);
  if (v.mean !== 'logits' && v.mean !== 'probs')
    throw new Error(`${path}: mean must be 'logits' or 'probs' but is ${JSON.stringify(v.mean)}`);
  const base = dirname(resolve(path));
  return {
    ...v,
    members: v.members.map((m, i) => {
      if (!(typeof m.checkpoint === 'string' && Number.isFinite(m.weight) && m.weight >= 0))
        throw new Error(`${path}: member ${i + 1} needs a checkpoint path and a weight >= 0`);
      return { ...m, checkpoint: resolve(base, m.checkpoint), run: m.run ? resolve(base, m.run) : null };
    }),
  };
}

export function writeEnsemble(path: string, spec: Omit<EnsembleSpec, 'format'>): void {
  writeJsonAtomic(path, { format: ENSEMBLE_FORMAT, ...spec });
}

/** Checks weights (default equal) against the member count; they need not sum to 1 (normalised). */
export function normaliseWeights(weights: readonly number[] | undefined, n: number): number[] {
  const w = weights ?? new Array<number>(n).fill(1);
  if (w.length !== n) throw new Error(`--weights: ${w.length} weight(s) for ${n} member(s)`);
  if (w.some((x) => !(Number.isFinite(x) && x >= 0)) || w.reduce((a, b) => a + b, 0) <= 0)
    throw new Error(`--weights: expected numbers >= 0 with a positive sum but received ${w.join(',')}`);
  const s = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / s);
}

/**
 * Weighted mean of the members' score rows ([n * classes] each): of the
 * logits, or of the probabilities (returned as log-probabilities, so softmax
 * of the result is the mean probability). Rows that are NaN in any member stay NaN.
 */
export function combineScores(
  members: readonly Float32Array[],
  weights: readonly number[],
  classes: number,
  mean: TtaMean,
): Float32Array {
  const len = members[0]!.length;
  if (members.some((m) => m.length !== len))
    throw new Error('combineScores: members scored different numbers of samples');
  const out = new Float32Array(len);
  const n = len / classes;
  for (let i = 0; i < n; i++) {
    const acc = new Float64Array(classes);
    for (let m = 0; m < members.length; m++) {
      const row = members[m]!.subarray(i * classes, (i + 1) * classes);
      const v = mean === 'probs' ? softmaxRow(row) : row;
      for (let j = 0; j < classes; j++) acc[j] = acc[j]! + weights[m]! * v[j]!;
    }
    for (let j = 0; j < classes; j++) out[i * classes + j] = mean === 'probs' ? Math.log(acc[j]!) : acc[j]!;
  }
  return out;
}

export interface EnsembleEvalResult {
  members: (EvaluateResult & { name: string; checkpoint: string; weight: number })[];
  ensemble: { metrics: EvalMetrics; predictions: SamplePrediction[]; logits: Float32Array };
}

/** Evaluates every member with its own pre-processing, then the weighted mean of their scores. */
export async function evaluateEnsemble(
  members: readonly EnsembleMember[],
  ds: Dataset,
  o: { weights?: number[]; mean?: TtaMean; keepTopK?: number } & Omit<EvaluateOptions, 'keepLogits' | 'device'> = {},
): Promise<EnsembleEvalResult> {
  const classes = members[0]!.classes;
  for (const m of members) {
    if (JSON.stringify(m.classes) !== JSON.stringify(classes))
      throw new Error(
        `${m.checkpointDir}: its classes differ from ${members[0]!.checkpointDir}'s; ensemble members must share one class list`,
      );
  }
  const weights = normaliseWeights(o.weights, members.length);
  const results: EnsembleEvalResult['members'] = [];
  for (let i = 0; i < members.length; i++) {
    const m = members[i]!;
    const r = await evaluate(m.model, ds, evalPipeline(m.preprocess, m.maxPixels), {
      ...o,
      device: m.device,
      keepLogits: true,
      keepTopK: 0,
    });
    results.push({ ...r, name: m.modelName, checkpoint: m.checkpointDir, weight: weights[i]! });
  }
  const c = classes.length;
  const logits = combineScores(
    results.map((r) => r.logits!),
    weights,
    c,
    o.mean ?? 'logits',
  );
  const acc = new MetricsAccumulator(classes);
  const predictions: SamplePrediction[] = [];
  const k = Math.min(o.keepTopK ?? 5, c);
  for (let i = 0; i < ds.samples.length; i++) {
    const row = logits.subarray(i * c, (i + 1) * c);
    if (Number.isNaN(row[0])) continue; // a bad file for some member
    const label = ds.samples[i]!.label;
    acc.add(row, [label], [i]);
    // The ensemble's loss: cross-entropy of its mean scores.
    const p = softmaxRow(row);
    acc.addLoss(-Math.log(Math.max(p[label]!, 1e-45)), 1);
    if (k > 0) predictions.push(topKPrediction(row, p, k, { index: i, path: ds.samples[i]!.path, label }));
  }
  return { members: results, ensemble: { metrics: acc.result(), predictions, logits } };
}
