// Runs a classifier over a dataset split: every sample exactly once, in
// batches, returning metrics and per-sample top-k predictions.
import * as T from '../tensor/index.js';
import type { Module } from '../nn/index.js';
import { DataLoader, type Dataset, type PipelineConfig } from '../data/index.js';
import { shardLength, type Shard } from '../data/shard.js';
import { MetricsAccumulator, softmaxRow, topKPrediction, type EvalMetrics } from './metrics.js';
import type { ClassifierPrediction } from '../run/eval-file.js';

/** One sample's top-k classes and probabilities (as the eval file stores them). */
export type SamplePrediction = ClassifierPrediction;

export interface EvaluateOptions {
  batchSize?: number;
  device?: T.Device;
  channelsLast?: boolean;
  workers?: number;
  /** Extra views averaged with the plain one (test-time augmentation); see TTA_VIEWS. */
  tta?: TtaView[];
  /** Average the views' logits (default) or their probabilities. */
  ttaMean?: TtaMean;
  /** Also return every sample's scores (rows by dataset index), e.g. for ensembles. */
  keepLogits?: boolean;
  /** Keep top-k per sample (0 = none). */
  keepTopK?: number;
  onBatch?: (done: number, total: number) => void;
  /** Data-parallel: evaluate only this rank's samples (rank r: r, r+W, ...; no padding). */
  shard?: Shard;
  /** Data-parallel: turns this shard's metric counts into the whole split's (an all-reduce sum over ranks). */
  reduceCounts?: (counts: Float64Array) => Float64Array;
}

export interface EvaluateResult {
  metrics: EvalMetrics;
  predictions: SamplePrediction[];
  badFiles: { path: string; reason: string; message: string }[];
  seconds: number;
  /** With keepLogits: [samples * classes] scores, row = dataset index (NaN rows: bad files). */
  logits?: Float32Array;
}

/**
 * Test-time views besides the plain image: 'flip' (horizontal), 'zoom' (the
 * central 7/8 enlarged back to full size: a center crop at a second scale),
 * 'zoomflip' (both). Tensor-level, so one decoded batch serves every view.
 */
export const TTA_VIEWS = ['flip', 'zoom', 'zoomflip'] as const;
export type TtaView = (typeof TTA_VIEWS)[number];
export const TTA_MEANS = ['logits', 'probs'] as const;
export type TtaMean = (typeof TTA_MEANS)[number];

function zoom(x: T.Tensor): T.Tensor {
  const [h, w] = [x.shape[2]!, x.shape[3]!];
  const ch = Math.round((h * 7) / 8);
  const cw = Math.round((w * 7) / 8);
  const crop = x.narrow(2, Math.floor((h - ch) / 2), ch).narrow(3, Math.floor((w - cw) / 2), cw);
  return T.F.interpolate(crop, { size: [h, w], mode: 'bilinear', alignCorners: false });
}

/** The plain batch followed by its test-time views (call inside a tidy scope). */
export function ttaViews(x: T.Tensor, tta: readonly string[]): T.Tensor[] {
  const views = [x];
  for (const t of tta) {
    if (t === 'flip') views.push(x.flip(3));
    else if (t === 'zoom') views.push(zoom(x));
    else if (t === 'zoomflip') views.push(zoom(x).flip(3));
    else throw new Error(`unknown test-time view '${t}' (known: ${TTA_VIEWS.join(', ')})`);
  }
  return views;
}

/**
 * Scores of a batch under eval mode, no grad, averaged over the plain view and
 * the TTA views: the mean of logits, or with mean 'probs' the log of the mean
 * probability (so a softmax of the result gives the mean probabilities).
 */
export function batchLogits(
  model: Module,
  x: T.Tensor,
  tta: readonly string[] = [],
  mean: TtaMean = 'logits',
): T.Tensor {
  return T.tidy(() =>
    T.noGrad(() => {
      const views = ttaViews(x, tta);
      let sum: T.Tensor | null = null;
      for (const v of views) {
        const logits = model.forward(v).float();
        const s = mean === 'probs' ? T.F.softmax(logits, 1) : logits;
        sum = sum ? sum.add(s) : s;
      }
      const avg = views.length > 1 ? sum!.div(views.length) : sum!;
      return mean === 'probs' ? avg.log() : avg;
    }),
  );
}

export async function evaluate(
  model: Module,
  ds: Dataset,
  pipeline: PipelineConfig,
  o: EvaluateOptions = {},
): Promise<EvaluateResult> {
  const started = Date.now();
  const loader = new DataLoader({
    dataset: ds,
    pipeline,
    batchSize: o.batchSize ?? 32,
    mode: 'eval',
    ...(o.workers !== undefined ? { workers: o.workers } : {}),
    ...(o.shard ? { shard: o.shard } : {}),
    reuseBuffers: true, // each batch is copied into a tensor before the next is requested
  });
  const acc = new MetricsAccumulator(ds.classes);
  const predictions: SamplePrediction[] = [];
  const k = Math.min(o.keepTopK ?? 5, ds.classes.length);
  const wasTraining = model.training;
  model.eval();
  let done = 0;
  const c = ds.classes.length;
  const all = o.keepLogits ? new Float32Array(ds.samples.length * c).fill(NaN) : undefined;
  try {
    for await (const batch of loader) {
      const scores = T.tidy(() => {
        let x = T.tensor(batch.data as Float32Array, batch.shape);
        x = T.batchToDevice(x, o.device ?? 'cpu', { channelsLast: o.channelsLast });
        const logits = batchLogits(model, x, o.tta ?? [], o.ttaMean ?? 'logits');
        const y = T.batchToDevice(T.tensor(batch.labels, [batch.labels.length]).long(), o.device ?? 'cpu');
        const loss = T.F.crossEntropy(logits, y, { reduction: 'sum' });
        acc.addLoss(loss.item(), batch.labels.length);
        return logits.cpu().data<'float32'>();
      });
      // Samples skipped as bad files are missing from the batch; the rest count once each.
      acc.add(scores, batch.labels, batch.indices);
      if (all) batch.indices.forEach((idx, i) => all.set(scores.subarray(i * c, (i + 1) * c), idx * c));
      if (k > 0) {
        for (let i = 0; i < batch.labels.length; i++) {
          const row = scores.subarray(i * c, (i + 1) * c);
          const idx = batch.indices[i]!;
          const sample = { index: idx, path: ds.samples[idx]!.path, label: batch.labels[i]! };
          predictions.push(topKPrediction(row, softmaxRow(row), k, sample));
        }
      }
      done += batch.labels.length;
      o.onBatch?.(done, o.shard ? shardLength(ds.samples.length, o.shard, false) : ds.samples.length);
    }
  } finally {
    await loader.close();
    model.train(wasTraining);
  }
  if (o.reduceCounts) acc.setCounts(o.reduceCounts(acc.counts()));
  return {
    metrics: acc.result(),
    predictions,
    badFiles: loader.badFiles.map((b) => ({ path: b.path, reason: b.reason, message: b.message })),
    seconds: (Date.now() - started) / 1000,
    ...(all ? { logits: all } : {}),
  };
}
