// `goodsrec eval` on an exported graph (fp32 or int8): the split through the
// graph's own pre-processing (its sidecar) in onnxruntime, scored with the
// same metrics as the engine's evaluate(), so both precisions can be compared
// on the same photos. Flip views are computed here (the graph then runs twice).
import ort from 'onnxruntime-node';
import { DataLoader, type Dataset } from '../../data/index.js';
import type { EvaluateResult, SamplePrediction, TtaMean } from '../../eval/evaluate.js';
import { MetricsAccumulator, softmaxRow, topKPrediction } from '../../eval/metrics.js';
import { evalPipeline } from '../../run/pipelines.js';
import type { OnnxSidecar } from './export.js';

export interface EvaluateOnnxOptions {
  batchSize?: number;
  /** Views computed outside the graph: 'flip' (horizontal) averaged with the plain image. */
  tta?: readonly 'flip'[];
  ttaMean?: TtaMean;
  keepTopK?: number;
  threads?: number;
  maxPixels?: number;
  onBatch?: (done: number, total: number) => void;
}

/** Horizontal flip of float32 NCHW rows. */
export function hflipNchw(x: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  const y = new Float32Array(x.length);
  for (let r = 0; r < n * c * h; r++) {
    const o = r * w;
    for (let j = 0; j < w; j++) y[o + j] = x[o + w - 1 - j]!;
  }
  return y;
}

/** Evaluates the graph at onnxPath (described by `sidecar`) on `ds`, whose labels follow sidecar.classes. */
export async function evaluateOnnx(
  onnxPath: string,
  sidecar: OnnxSidecar,
  ds: Dataset,
  o: EvaluateOnnxOptions = {},
): Promise<EvaluateResult> {
  const started = Date.now();
  if (o.tta?.length && sidecar.tta.length)
    throw new Error(`${onnxPath}: the graph already computes its test-time views (${sidecar.tta.join(', ')})`);
  const session = await ort.InferenceSession.create(onnxPath, {
    graphOptimizationLevel: 'all',
    ...(o.threads ? { intraOpNumThreads: o.threads } : {}),
  });
  const loader = new DataLoader({
    dataset: ds,
    pipeline: evalPipeline(sidecar.preprocess, o.maxPixels),
    batchSize: o.batchSize ?? 32,
    mode: 'eval',
  });
  const acc = new MetricsAccumulator(ds.classes);
  const predictions: SamplePrediction[] = [];
  const c = sidecar.classes.length;
  const k = Math.min(o.keepTopK ?? 5, c);
  const views = 1 + (o.tta?.length ?? 0);
  let done = 0;
  try {
    for await (const batch of loader) {
      const [n, ch, h, w] = batch.shape;
      const logits = async (x: Float32Array): Promise<Float32Array> =>
        (
          await session.run({ [sidecar.input.name]: new ort.Tensor('float32', x, [n, ch, h, w]) }, [
            sidecar.output.name,
          ])
        )[sidecar.output.name]!.data as Float32Array;
      // A copy: the loader's batch may be a SharedArrayBuffer view, which onnxruntime-node refuses.
      const x = Float32Array.from(batch.data as Float32Array);
      let scores = await logits(x);
      if (views > 1) {
        const flipped = await logits(hflipNchw(x, n, ch, h, w));
        const mean = new Float32Array(scores.length);
        if ((o.ttaMean ?? 'logits') === 'logits')
          for (let i = 0; i < mean.length; i++) mean[i] = (scores[i]! + flipped[i]!) / 2;
        else
          for (let i = 0; i < n; i++) {
            // log of the mean probability, as batchLogits does for ttaMean 'probs'
            const p = softmaxRow(scores.subarray(i * c, (i + 1) * c));
            const q = softmaxRow(flipped.subarray(i * c, (i + 1) * c));
            for (let j = 0; j < c; j++) mean[i * c + j] = Math.log((p[j]! + q[j]!) / 2);
          }
        scores = mean;
      }
      // One softmax per photo serves its loss and its top-k probabilities.
      let loss = 0;
      for (let i = 0; i < n; i++) {
        const row = scores.subarray(i * c, (i + 1) * c);
        const p = softmaxRow(row);
        const label = batch.labels[i]!;
        loss -= Math.log(Math.max(p[label]!, Number.MIN_VALUE));
        const idx = batch.indices[i]!;
        if (k > 0) predictions.push(topKPrediction(row, p, k, { index: idx, path: ds.samples[idx]!.path, label }));
      }
      acc.addLoss(loss, n);
      acc.add(scores, batch.labels, batch.indices);
      done += n;
      o.onBatch?.(done, ds.samples.length);
    }
  } finally {
    await loader.close();
    await session.release();
  }
  return {
    metrics: acc.result(),
    predictions,
    badFiles: loader.badFiles.map((b) => ({ path: b.path, reason: b.reason, message: b.message })),
    seconds: (Date.now() - started) / 1000,
  };
}
