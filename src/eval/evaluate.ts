// Runs a classifier over a dataset split: every sample exactly once, in
// batches, returning metrics and per-sample top-k predictions.
import * as T from '../tensor/index.js';
import type { Module } from '../nn/index.js';
import { DataLoader, type Dataset, type PipelineConfig } from '../data/index.js';
import { MetricsAccumulator, softmaxRow, topk, type EvalMetrics } from './metrics.js';

export interface SamplePrediction {
  index: number;
  path: string;
  label: number;
  /** Top-k class indices, best first, and their probabilities. */
  top: number[];
  probs: number[];
}

export interface EvaluateOptions {
  batchSize?: number;
  device?: T.Device;
  channelsLast?: boolean;
  workers?: number;
  /** Views whose logits are averaged (test-time augmentation): 'flip' adds a horizontal flip. */
  tta?: ('flip')[];
  /** Keep top-k per sample (0 = none). */
  keepTopK?: number;
  onBatch?: (done: number, total: number) => void;
}

export interface EvaluateResult {
  metrics: EvalMetrics;
  predictions: SamplePrediction[];
  badFiles: { path: string; reason: string; message: string }[];
  seconds: number;
}

/** Logits of a batch under eval mode, no grad, with optional flip TTA (mean of logits). */
export function batchLogits(model: Module, x: T.Tensor, tta: readonly string[] = []): T.Tensor {
  return T.tidy(() => T.noGrad(() => {
    let logits = model.forward(x);
    if (tta.includes('flip')) {
      const flipped = model.forward(x.flip(3));
      logits = logits.add(flipped).div(2);
    }
    return logits.float();
  }));
}

export async function evaluate(model: Module, ds: Dataset, pipeline: PipelineConfig, o: EvaluateOptions = {}): Promise<EvaluateResult> {
  const started = Date.now();
  const loader = new DataLoader({
    dataset: ds, pipeline, batchSize: o.batchSize ?? 32, mode: 'eval', ...(o.workers !== undefined ? { workers: o.workers } : {}),
  });
  const acc = new MetricsAccumulator(ds.classes);
  const predictions: SamplePrediction[] = [];
  const k = Math.min(o.keepTopK ?? 5, ds.classes.length);
  const wasTraining = model.training;
  model.eval();
  let done = 0;
  try {
    for await (const batch of loader) {
      const scores = T.tidy(() => {
        let x = T.tensor(batch.data as Float32Array, batch.shape);
        if (o.device && o.device !== 'cpu') x = x.to(o.device);
        if (o.channelsLast) x = x.contiguous('channelsLast');
        const logits = batchLogits(model, x, o.tta ?? []);
        const y = T.tensor(batch.labels, [batch.labels.length]).long().to((o.device ?? 'cpu') as T.Device);
        const loss = T.F.crossEntropy(logits, y, { reduction: 'sum' });
        acc.addLoss(loss.item(), batch.labels.length);
        return logits.cpu().data<'float32'>();
      });
      // Samples skipped as bad files are missing from the batch; the rest count once each.
      acc.add(scores, batch.labels, batch.indices);
      const c = ds.classes.length;
      if (k > 0) {
        for (let i = 0; i < batch.labels.length; i++) {
          const row = scores.subarray(i * c, (i + 1) * c);
          const p = softmaxRow(row);
          const top = topk(row, k);
          const idx = batch.indices[i]!;
          predictions.push({ index: idx, path: ds.samples[idx]!.path, label: batch.labels[i]!, top, probs: top.map((j) => p[j]!) });
        }
      }
      done += batch.labels.length;
      o.onBatch?.(done, ds.samples.length);
    }
  } finally {
    await loader.close();
    model.train(wasTraining);
  }
  return {
    metrics: acc.result(),
    predictions,
    badFiles: loader.badFiles.map((b) => ({ path: b.path, reason: b.reason, message: b.message })),
    seconds: (Date.now() - started) / 1000,
  };
}
