// The label audit of a dataset with a trained run: likely wrong labels (confident learning on out-of-sample
// probabilities), exact and near-duplicate photos across classes and splits, and look-alike class pairs.
// It reads the dataset and never writes to it; what to change is left to the user (suggestions.csv).
import { resolveSamplePath, splitNames, type Dataset } from '../data/dataset.js';
import { analyzeDataset, type DuplicateGroup } from '../data/analyze.js';
import type { LoadedRecognizer } from '../eval/predictor.js';
import { embedDataset } from '../gallery/embed.js';
import { classCentroids, closestCentroidPairs } from '../gallery/lookalikes.js';
import { confidentLearning, rankBySuspicion } from './confident-learning.js';
import { DEFAULT_KNN, knnLabelProbabilities } from './knn-scores.js';
import { modelLabelProbabilities } from './model-scores.js';
import { hashPhotos, nearHashPairs } from './near-duplicates.js';

export type AuditScores = 'knn' | 'model';
export const AUDIT_SCORES: readonly AuditScores[] = ['knn', 'model'];

export interface AuditOptions {
  /** Where the out-of-sample probabilities come from (default 'knn'). */
  scores?: AuditScores;
  /** k-NN settings (scores 'knn'). */
  neighbours?: number;
  temperature?: number;
  /** Near duplicates: dHashes differing in at most this many of 64 bits (default 4). */
  duplicateBits?: number;
  /** Look-alike class pairs listed (default 20). */
  pairs?: number;
  maxPixels?: number;
  /** How the result names the dataset (default its root folder; the CLI gives the path it was given). */
  dataName?: string;
  /** Progress of each stage ('embedding', 'scoring', 'hashing', 'reading'). */
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface AuditPhoto {
  /** Absolute path. */
  path: string;
  split: string;
  given: string;
  /** The most probable class other than the given one. */
  suggested: string;
  /** Out-of-sample probability of the given label (self-confidence; low = suspect). */
  quality: number;
  suggestedProbability: number;
  /** Flagged by confident learning as a likely wrong label. */
  flagged: boolean;
}

export interface NearDuplicate {
  a: { path: string; split: string; class: string };
  b: { path: string; split: string; class: string };
  /** Differing dHash bits (of 64). */
  bits: number;
  crossClass: boolean;
  crossSplit: boolean;
}

export interface LookalikePair {
  a: string;
  b: string;
  /** Photos given a that the out-of-sample scores give b as most probable, and the reverse. */
  aAsB: number;
  bAsA: number;
  /** (aAsB + bAsA) / (photos of a + photos of b). */
  confusionRate: number;
  /** Cosine of the two classes' embedding centroids. */
  centroidSimilarity: number;
  aPhotos: number;
  bPhotos: number;
}

export interface AuditResult {
  format: 'goodsrec-audit-1';
  data: string;
  splits: string[];
  model: { name: string; checkpoint: string };
  scores: { method: AuditScores; neighbours?: number; temperature?: number };
  labels: {
    /** Every audited photo, most suspect first (the ranking of rankBySuspicion). */
    photos: AuditPhoto[];
    flagged: number;
    /** Confident learning's estimate of the number of wrong labels (the calibrated joint's off-diagonal mass). */
    estimatedErrors: number;
    thresholds: { class: string; threshold: number | null }[];
  };
  duplicates: {
    /** Exact copies (content sha256) that cross splits or carry different labels (absolute paths). */
    exact: DuplicateGroup[];
    /** dHash near-duplicates that cross classes or splits (exact copies left out), fewest differing bits first. */
    near: NearDuplicate[];
    nearTotal: number;
    bits: number;
  };
  lookalikes: LookalikePair[];
  badFiles: { path: string; message: string }[];
}

/** Audits every sample of `ds` (select the splits first) with recognizer r. The dataset is only read. */
export async function auditDataset(r: LoadedRecognizer, ds: Dataset, o: AuditOptions = {}): Promise<AuditResult> {
  if (r.ensemble) throw new Error(`${r.checkpointDir}: an ensemble; audit one run`);
  if (ds.samples.length < 2) throw new Error(`dataset ${ds.root}: an audit needs at least 2 photos`);
  const method = o.scores ?? 'knn';
  const progress = (stage: string) => (d: number, t: number) => o.onProgress?.(stage, d, t);
  const emb = await embedDataset(r, ds, { onBatch: progress('embedding') });
  const model = method === 'model' ? await modelLabelProbabilities(r, ds, { onBatch: progress('scoring') }) : null;
  const badFiles = [...emb.badFiles];
  const c = ds.classes.length;
  const good = ds.samples.flatMap((_, i) => (emb.ok[i] && (model?.ok[i] ?? true) ? [i] : []));
  if (good.length < 2)
    throw new Error(`dataset ${ds.root}: fewer than 2 of its ${ds.samples.length} photos could be read`);
  const rows = new Float32Array(good.length * emb.dim);
  good.forEach((i, j) => rows.set(emb.embeddings.subarray(i * emb.dim, (i + 1) * emb.dim), j * emb.dim));
  const labels = good.map((i) => ds.samples[i]!.label);
  const probs = new Float64Array(good.length * c);
  if (model) good.forEach((i, j) => probs.set(model.probs.subarray(i * c, (i + 1) * c), j * c));
  else
    probs.set(
      knnLabelProbabilities(rows, emb.dim, labels, c, {
        k: o.neighbours ?? DEFAULT_KNN.k,
        temperature: o.temperature ?? DEFAULT_KNN.temperature,
        device: r.device,
      }),
    );
  const cl = confidentLearning(probs, labels, c);
  const photos = rankBySuspicion(cl).map((j): AuditPhoto => {
    const s = ds.samples[good[j]!]!;
    return {
      path: resolveSamplePath(ds, s),
      split: s.split,
      given: ds.classes[s.label]!,
      suggested: ds.classes[cl.suggested[j]!] ?? '',
      quality: cl.quality[j]!,
      suggestedProbability: cl.suggestedProbability[j]!,
      flagged: cl.flagged[j]!,
    };
  });

  // Look-alike pairs: out-of-sample confusions, and the closest class centroids of the embedding.
  const confusion = new Map<string, number>();
  const photosOf = new Array<number>(c).fill(0);
  labels.forEach((y, j) => {
    photosOf[y]!++;
    let best = 0;
    for (let t = 1; t < c; t++) if (probs[j * c + t]! > probs[j * c + best]!) best = t;
    if (best !== y && probs[j * c + best]! > 0) confusion.set(`${y},${best}`, (confusion.get(`${y},${best}`) ?? 0) + 1);
  });
  const centroids = classCentroids(rows, emb.dim, labels, c);
  const cosine = (a: number, b: number): number => {
    let s = 0;
    for (let d = 0; d < emb.dim; d++) s += centroids[a * emb.dim + d]! * centroids[b * emb.dim + d]!;
    return s;
  };
  const nPairs = o.pairs ?? 20;
  const candidates = new Set<string>(closestCentroidPairs(centroids, emb.dim, nPairs).map((p) => `${p.a},${p.b}`));
  for (const key of confusion.keys()) {
    const [y, t] = key.split(',').map(Number) as [number, number];
    candidates.add(y < t ? `${y},${t}` : `${t},${y}`);
  }
  const lookalikes = [...candidates]
    .map((key): LookalikePair => {
      const [a, b] = key.split(',').map(Number) as [number, number];
      const aAsB = confusion.get(`${a},${b}`) ?? 0;
      const bAsA = confusion.get(`${b},${a}`) ?? 0;
      return {
        a: ds.classes[a]!,
        b: ds.classes[b]!,
        aAsB,
        bAsA,
        confusionRate: (aAsB + bAsA) / Math.max(1, photosOf[a]! + photosOf[b]!),
        centroidSimilarity: cosine(a, b),
        aPhotos: photosOf[a]!,
        bPhotos: photosOf[b]!,
      };
    })
    .sort((x, y) => y.confusionRate - x.confusionRate || y.centroidSimilarity - x.centroidSimilarity)
    .slice(0, nPairs);

  // Duplicates: exact copies from the dataset analysis (headers only), near ones from dHashes.
  const analysis = await analyzeDataset(ds, {
    decode: false,
    ...(o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : {}),
    onProgress: progress('reading'),
  });
  // Absolute paths, as everywhere in the result.
  const exact = analysis.duplicates.groups
    .filter((g) => g.kind === 'cross-split' || g.conflictingLabels)
    .map((g) => ({ ...g, files: g.files.map((f) => ({ ...f, path: resolveSamplePath(ds, f) })) }));
  const copyOf = new Map<string, string>();
  for (const g of analysis.duplicates.groups) for (const f of g.files) copyOf.set(f.path, g.sha256);
  const hashes = await hashPhotos(ds, {
    ...(o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : {}),
    onProgress: progress('hashing'),
  });
  const bits = o.duplicateBits ?? 4;
  const side = (i: number) => {
    const s = ds.samples[i]!;
    return { path: resolveSamplePath(ds, s), split: s.split, class: ds.classes[s.label]! };
  };
  const near = nearHashPairs(hashes, bits, (i, j) => {
    const a = ds.samples[i]!;
    const b = ds.samples[j]!;
    if (a.label === b.label && a.split === b.split) return false;
    const sha = copyOf.get(a.path);
    return sha === undefined || sha !== copyOf.get(b.path);
  });
  for (const b of hashes.badFiles) if (!badFiles.some((x) => x.path === b.path)) badFiles.push(b);

  return {
    format: 'goodsrec-audit-1',
    data: o.dataName ?? ds.root,
    splits: splitNames(ds),
    model: { name: r.modelName, checkpoint: r.checkpointDir },
    scores:
      method === 'knn'
        ? {
            method,
            neighbours: o.neighbours ?? DEFAULT_KNN.k,
            temperature: o.temperature ?? DEFAULT_KNN.temperature,
          }
        : { method },
    labels: {
      photos,
      flagged: cl.flagged.filter(Boolean).length,
      estimatedErrors: cl.estimatedErrors,
      thresholds: ds.classes.map((name, y) => ({
        class: name,
        threshold: Number.isFinite(cl.thresholds[y]!) ? cl.thresholds[y]! : null,
      })),
    },
    duplicates: {
      exact,
      near: near.pairs.map((p) => {
        const a = side(p.i);
        const b = side(p.j);
        return { a, b, bits: p.bits, crossClass: a.class !== b.class, crossSplit: a.split !== b.split };
      }),
      nearTotal: near.total,
      bits,
    },
    lookalikes,
    badFiles,
  };
}
