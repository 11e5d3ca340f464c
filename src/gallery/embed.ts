// Embeddings for a gallery: the model's pooled backbone feature (a softmax run)
// or its embedding head's output (an ArcFace/CosFace run), L2-normalised,
// averaged over test-time views. Images go through the run's own evaluation
// pre-processing (predictor.scoreFiles for files, the DataLoader + evalPipeline
// as evaluate() does for datasets).
import * as T from '../tensor/index.js';
import type { ClassifierModel } from '../models/index.js';
import { DataLoader, type Dataset } from '../data/index.js';
import { evalPipeline } from '../run/pipelines.js';
import { ttaViews, type TtaView } from '../eval/evaluate.js';
import { scoreFiles, type LoadedRecognizer } from '../eval/predictor.js';

/** A model with an embedding head (see models/margin-head.ts): embed(x) gives the neck output. */
export interface EmbeddingModel {
  embed(x: T.Tensor): T.Tensor;
}

export function hasEmbeddingHead(model: object): model is EmbeddingModel {
  return typeof (model as Partial<EmbeddingModel>).embed === 'function';
}

/** Rows scaled to unit length (a zero row stays zero). */
export function l2Normalize(x: T.Tensor): T.Tensor {
  return T.tidy(() => x.div(x.norm(2, 1, true).clampMin(1e-12)));
}

/** Unit-length embeddings [n, D] of a batch [n, 3, s, s], under eval mode and no grad. */
export function embedBatch(model: ClassifierModel, x: T.Tensor, tta: readonly TtaView[] = []): T.Tensor {
  return T.tidy(() =>
    T.noGrad(() => {
      let sum: T.Tensor | null = null;
      for (const v of ttaViews(x, tta)) {
        const raw = hasEmbeddingHead(model) ? model.embed(v) : model.forwardHead(model.forwardFeatures(v), true);
        const e = l2Normalize(raw.float());
        sum = sum ? sum.add(e) : e;
      }
      return l2Normalize(sum!);
    }),
  );
}

export interface FileEmbedding {
  path: string;
  embedding?: Float32Array;
  error?: string;
}

/** Embeddings of image files; a bad file gets an error entry instead of stopping. */
export async function embedFiles(
  r: LoadedRecognizer,
  paths: readonly string[],
  o: { tta?: TtaView[]; batchSize?: number } = {},
): Promise<FileEmbedding[]> {
  if (r.ensemble) throw new Error(`${r.checkpointDir}: an ensemble cannot make gallery embeddings; name one run`);
  const wasTraining = r.model.training;
  r.model.eval();
  try {
    const out = await scoreFiles(r, paths, { batchSize: o.batchSize ?? 16 }, (x) =>
      embedBatch(r.model, x, o.tta ?? []),
    );
    return out.map((d) =>
      d.scores ? { path: d.path, embedding: d.scores } : { path: d.path, error: d.error ?? 'unreadable' },
    );
  } finally {
    r.model.train(wasTraining);
  }
}

export interface DatasetEmbeddings {
  dim: number;
  /** Row i = sample i (NaN rows for bad files). */
  embeddings: Float32Array;
  ok: boolean[];
  badFiles: { path: string; message: string }[];
}

/** Embeddings of every sample of a dataset, in batches through the loader's workers. */
export async function embedDataset(
  r: LoadedRecognizer,
  ds: Dataset,
  o: { tta?: TtaView[]; batchSize?: number; workers?: number; onBatch?: (done: number, total: number) => void } = {},
): Promise<DatasetEmbeddings> {
  const loader = new DataLoader({
    dataset: ds,
    pipeline: evalPipeline(r.preprocess, r.maxPixels),
    batchSize: o.batchSize ?? 32,
    mode: 'eval',
    ...(o.workers !== undefined ? { workers: o.workers } : {}),
    reuseBuffers: true,
  });
  const wasTraining = r.model.training;
  r.model.eval();
  let dim = 0;
  let all = new Float32Array(0);
  const ok = new Array<boolean>(ds.samples.length).fill(false);
  let done = 0;
  try {
    for await (const batch of loader) {
      const rows = T.tidy(() => {
        let x = T.tensor(batch.data as Float32Array, batch.shape);
        x = T.batchToDevice(x, r.device); // pinned, non-blocking on CUDA
        const e = embedBatch(r.model, x, o.tta ?? []);
        return { d: e.shape[1]!, data: e.cpu().data<'float32'>() };
      });
      if (!dim) {
        dim = rows.d;
        all = new Float32Array(ds.samples.length * dim).fill(NaN);
      }
      batch.indices.forEach((idx, i) => {
        all.set(rows.data.subarray(i * dim, (i + 1) * dim), idx * dim);
        ok[idx] = true;
      });
      done += batch.labels.length;
      o.onBatch?.(done, ds.samples.length);
    }
  } finally {
    await loader.close();
    r.model.train(wasTraining);
  }
  return { dim, embeddings: all, ok, badFiles: loader.badFiles.map((b) => ({ path: b.path, message: b.message })) };
}
