// The classifier's own probabilities as the audit's scores (`--scores model`). They are out-of-sample only
// for photos the run did not train on (a held-out split, or a k-fold run's held-out fold); on its own
// training photos a model that memorised a wrong label gives it a high probability.
import type { Dataset } from '../data/dataset.js';
import { alignClasses } from '../eval/align.js';
import { evaluate } from '../eval/evaluate.js';
import { softmaxRow } from '../eval/metrics.js';
import type { LoadedRecognizer } from '../eval/predictor.js';
import { evalPipeline } from '../run/pipelines.js';

/**
 * Probabilities [n * ds.classes] (the dataset's class order; the model's other classes are left out and
 * each row renormalised) and which samples could be read. Every dataset class must be one of the model's.
 */
export async function modelLabelProbabilities(
  r: LoadedRecognizer,
  ds: Dataset,
  o: { onBatch?: (done: number, total: number) => void } = {},
): Promise<{ probs: Float64Array; ok: boolean[]; badFiles: { path: string; message: string }[] }> {
  let aligned: Dataset;
  try {
    aligned = alignClasses(ds, r.classes, ds.root);
  } catch (e) {
    throw new Error(`${(e as Error).message}; --scores knn audits any classes`);
  }
  const res = await evaluate(r.model, aligned, evalPipeline(r.preprocess, r.maxPixels), {
    device: r.device,
    keepLogits: true,
    keepTopK: 0,
    ...(o.onBatch ? { onBatch: o.onBatch } : {}),
  });
  const m = r.classes.length;
  const c = ds.classes.length;
  const column = ds.classes.map((name) => r.classes.indexOf(name));
  const probs = new Float64Array(ds.samples.length * c);
  const ok = new Array<boolean>(ds.samples.length).fill(false);
  for (let i = 0; i < ds.samples.length; i++) {
    const row = res.logits!.subarray(i * m, (i + 1) * m);
    if (Number.isNaN(row[0])) continue;
    const p = softmaxRow(row);
    let total = 0;
    for (let j = 0; j < c; j++) total += column[j]! < 0 ? 0 : p[column[j]!]!;
    for (let j = 0; j < c; j++) probs[i * c + j] = column[j]! < 0 || !total ? 0 : p[column[j]!]! / total;
    ok[i] = true;
  }
  return { probs, ok, badFiles: res.badFiles.map((b) => ({ path: b.path, message: b.message })) };
}
