// Out-of-sample class probabilities without k-fold training: each photo's label distribution comes from
// the labels of its k nearest other photos in the run's embedding (leave-one-out, as the gallery scores its
// own build split), weighted by exp(similarity / temperature) (the weighted k-NN of Wu et al. 2018). The
// photo's own label never enters its own row. The embedding itself was trained on the (possibly noisy)
// labels; at the small budgets measured in docs/audit.md it has not memorised them (see there).
import { ExactIndex, type SearchResult } from '../gallery/search.js';
import type { Device } from '../tensor/index.js';

export interface KnnOptions {
  /** Neighbours that vote (default 10). */
  k?: number;
  /** Softness of the vote: weights exp(similarity / temperature) (default 0.07). */
  temperature?: number;
  device?: Device;
  /** Queries searched at a time (default 1024): bounds the similarity block (block x gallery chunk floats). */
  queryBlock?: number;
}

export const DEFAULT_KNN = { k: 10, temperature: 0.07 } as const;

/**
 * Probabilities [n * classes] from unit rows [n * dim] and their labels: row i is the similarity-weighted
 * vote of the k nearest rows other than i itself.
 */
export function knnLabelProbabilities(
  rows: Float32Array,
  dim: number,
  labels: ArrayLike<number>,
  classes: number,
  o: KnnOptions = {},
): Float64Array {
  const n = labels.length;
  if (rows.length !== n * dim)
    throw new RangeError(`knnLabelProbabilities: ${rows.length} floats for ${n} rows of ${dim}`);
  const k = Math.min(o.k ?? DEFAULT_KNN.k, n - 1);
  const temperature = o.temperature ?? DEFAULT_KNN.temperature;
  if (!(temperature > 0)) throw new RangeError(`k-NN temperature: expected > 0 but received ${temperature}`);
  const out = new Float64Array(n * classes);
  if (k < 1) return out;
  // Row i of out from query q of a search result: the k nearest rows other than i.
  const vote = (i: number, res: SearchResult, q: number): void => {
    let taken = 0;
    let top = Number.NaN;
    let total = 0;
    for (let j = 0; j < res.k && taken < k; j++) {
      const row = res.indices[q * res.k + j]!;
      if (row === i || row < 0) continue;
      const s = res.scores[q * res.k + j]!;
      if (Number.isNaN(top)) top = s;
      // Relative to the nearest neighbour's similarity, so exp never overflows.
      const w = Math.exp((s - top) / temperature);
      out[i * classes + labels[row]!]! += w;
      total += w;
      taken++;
    }
    if (total > 0) for (let c = 0; c < classes; c++) out[i * classes + c]! /= total;
  };
  const index = new ExactIndex(rows, dim, o.device ?? 'cpu');
  try {
    const block = o.queryBlock ?? 1024;
    for (let start = 0; start < n; start += block) {
      const end = Math.min(n, start + block);
      // One more than k: the photo itself is (nearly always) its own first neighbour.
      const res = index.searchRows(rows.subarray(start * dim, end * dim), k + 1);
      for (let i = start; i < end; i++) vote(i, res, i - start);
    }
  } finally {
    index.dispose();
  }
  return out;
}
