// Look-alike products in a gallery: class centroids and the closest class pairs (`gallery list
// --lookalikes`, the label audit), and the guard of `gallery add`: new photos that already lie within the
// "unknown product" threshold of an existing class would be answered as that class, so the two products
// are likely to be swapped (two flavours, two sizes). Similarities are cosines of unit rows.
import type { Gallery } from './format.js';
import { ExactIndex } from './search.js';

/** Unit-length mean of each class's unit rows, row-major [classes, dim]; a class without rows gets a zero row. */
export function classCentroids(
  rows: Float32Array,
  dim: number,
  labels: ArrayLike<number>,
  classes: number,
): Float32Array {
  const sum = new Float64Array(classes * dim);
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i]!;
    for (let d = 0; d < dim; d++) sum[c * dim + d]! += rows[i * dim + d]!;
  }
  const out = new Float32Array(classes * dim);
  for (let c = 0; c < classes; c++) {
    let n = 0;
    for (let d = 0; d < dim; d++) n += sum[c * dim + d]! ** 2;
    const norm = Math.sqrt(n);
    if (norm > 0) for (let d = 0; d < dim; d++) out[c * dim + d] = sum[c * dim + d]! / norm;
  }
  return out;
}

export interface CentroidPair {
  /** Class indices, a < b. */
  a: number;
  b: number;
  /** Cosine of the two class centroids. */
  similarity: number;
}

/**
 * The n class pairs with the most similar centroids, most similar first. Each class's n nearest centroids
 * (one chunked search) hold every pair of the global top n, so no C x C matrix is formed.
 */
export function closestCentroidPairs(centroids: Float32Array, dim: number, n: number): CentroidPair[] {
  const classes = centroids.length / dim;
  if (classes < 2 || n < 1) return [];
  const index = new ExactIndex(centroids, dim);
  try {
    const res = index.searchRows(centroids, Math.min(classes, n + 1));
    const seen = new Map<string, CentroidPair>();
    for (let i = 0; i < classes; i++) {
      for (let j = 0; j < res.k; j++) {
        const other = res.indices[i * res.k + j]!;
        if (other === i) continue;
        const [a, b] = i < other ? [i, other] : [other, i];
        seen.set(`${a},${b}`, { a, b, similarity: res.scores[i * res.k + j]! });
      }
    }
    return [...seen.values()].sort((x, y) => y.similarity - x.similarity || x.a - y.a || x.b - y.b).slice(0, n);
  } finally {
    index.dispose();
  }
}

/** Rows of one class of a gallery, row-major. */
function rowsOf(g: Gallery, cls: string): Float32Array {
  const d = g.meta.dim;
  const idx = g.meta.entries.flatMap((e, i) => (e.class === cls ? [i] : []));
  const out = new Float32Array(idx.length * d);
  idx.forEach((i, j) => out.set(g.embeddings.subarray(i * d, (i + 1) * d), j * d));
  return out;
}

/** For each query row, the similarity of its nearest row in `rows`. */
function nearestSimilarities(queries: Float32Array, rows: Float32Array, dim: number): Float32Array {
  const index = new ExactIndex(rows, dim);
  try {
    return index.searchRows(queries, 1).scores;
  } finally {
    index.dispose();
  }
}

export interface LookalikeThreshold {
  value: number;
  /**
   * 'calibrated': the gallery's "unknown product" threshold. 'own-class': no calibration yet, so the median
   * similarity of a gallery photo to the nearest other photo of its own class (how close a photo is to the
   * product it shows), measured on up to 2000 photos.
   */
  source: 'calibrated' | 'own-class';
}

/** The similarity above which two products count as look-alikes; null when the gallery cannot tell (no class with 2 photos). */
export function lookalikeThreshold(g: Gallery): LookalikeThreshold | null {
  if (g.meta.threshold !== null) return { value: g.meta.threshold, source: 'calibrated' };
  const d = g.meta.dim;
  const entries = g.meta.entries;
  const counts = new Map<string, number>();
  for (const e of entries) counts.set(e.class, (counts.get(e.class) ?? 0) + 1);
  const eligible = entries.flatMap((e, i) => ((counts.get(e.class) ?? 0) >= 2 ? [i] : []));
  if (!eligible.length) return null;
  // Evenly spaced, so the same gallery always gives the same threshold.
  const step = Math.max(1, eligible.length / 2000);
  const sample: number[] = [];
  for (let t = 0; t < eligible.length && sample.length < 2000; t += step) sample.push(eligible[Math.floor(t)]!);
  const sims: number[] = [];
  const byClass = new Map<string, number[]>();
  for (const i of sample) byClass.set(entries[i]!.class, [...(byClass.get(entries[i]!.class) ?? []), i]);
  for (const [cls, idx] of byClass) {
    const rows = rowsOf(g, cls);
    const q = new Float32Array(idx.length * d);
    idx.forEach((i, j) => q.set(g.embeddings.subarray(i * d, (i + 1) * d), j * d));
    // Two nearest: the first is the photo itself.
    const index = new ExactIndex(rows, d);
    try {
      const res = index.searchRows(q, 2);
      for (let j = 0; j < idx.length; j++) sims.push(res.scores[j * res.k + 1]!);
    } finally {
      index.dispose();
    }
  }
  sims.sort((a, b) => a - b);
  const m = sims.length >> 1;
  const median = sims.length % 2 ? sims[m]! : (sims[m - 1]! + sims[m]!) / 2;
  return { value: median, source: 'own-class' };
}

export interface LookalikeWarning {
  /** The existing class the new photos resemble. */
  class: string;
  /** New photos whose nearest photo of that class is at or above the threshold, of `of`. */
  photos: number;
  of: number;
  /** The highest similarity between a new photo and a photo of that class. */
  similarity: number;
}

/**
 * Existing classes that new photos (unit rows, not yet in `g`) lie within the threshold of, closest first.
 * `exclude`: the class being enrolled, when photos are added to a class the gallery already has.
 */
export function lookalikesOf(
  g: Gallery,
  newRows: Float32Array,
  threshold: number,
  o: { exclude?: string } = {},
): LookalikeWarning[] {
  const d = g.meta.dim;
  const q = newRows.length / d;
  const entries = g.meta.entries;
  if (!q || !entries.length) return [];
  // Neighbours in similarity order: once one is below the threshold, the rest are too.
  const index = new ExactIndex(g.embeddings, d);
  const found = new Map<string, { best: number; photos: Set<number> }>();
  try {
    const res = index.searchRows(newRows, Math.min(entries.length, 512));
    for (let i = 0; i < q; i++) {
      for (let j = 0; j < res.k; j++) {
        const s = res.scores[i * res.k + j]!;
        if (s < threshold) break;
        const cls = entries[res.indices[i * res.k + j]!]!.class;
        if (cls === o.exclude) continue;
        const f = found.get(cls) ?? { best: -Infinity, photos: new Set<number>() };
        f.best = Math.max(f.best, s);
        f.photos.add(i);
        found.set(cls, f);
      }
    }
  } finally {
    index.dispose();
  }
  return [...found]
    .map(([cls, f]) => ({ class: cls, photos: f.photos.size, of: q, similarity: f.best }))
    .sort((a, b) => b.similarity - a.similarity || b.photos - a.photos);
}

export interface GalleryLookalikePair {
  a: string;
  b: string;
  /** Cosine of the class centroids. */
  centroidSimilarity: number;
  /** The most similar photo pair across the two classes. */
  bestSimilarity: number;
  /** Photos of a (of b) whose nearest photo of the other class is at or above the threshold. */
  aWithin: number;
  bWithin: number;
  aPhotos: number;
  bPhotos: number;
}

/** The n class pairs of a gallery with the closest centroids, with their photo-level closeness. */
export function galleryLookalikePairs(g: Gallery, n: number, threshold: number | null): GalleryLookalikePair[] {
  const classes = [...new Set(g.meta.entries.map((e) => e.class))].sort();
  const idx = new Map(classes.map((c, i) => [c, i]));
  const labels = g.meta.entries.map((e) => idx.get(e.class)!);
  const d = g.meta.dim;
  const centroids = classCentroids(g.embeddings, d, labels, classes.length);
  return closestCentroidPairs(centroids, d, n).map((p) => {
    const a = rowsOf(g, classes[p.a]!);
    const b = rowsOf(g, classes[p.b]!);
    const ab = nearestSimilarities(a, b, d);
    const ba = nearestSimilarities(b, a, d);
    const within = (s: Float32Array): number => (threshold === null ? 0 : s.filter((x) => x >= threshold).length);
    return {
      a: classes[p.a]!,
      b: classes[p.b]!,
      centroidSimilarity: p.similarity,
      bestSimilarity: ab.reduce((m, x) => Math.max(m, x), -Infinity),
      aWithin: within(ab),
      bWithin: within(ba),
      aPhotos: a.length / d,
      bPhotos: b.length / d,
    };
  });
}

export interface NewClassCheck {
  /** null: uncalibrated and no class with two photos, so nothing to compare with. */
  threshold: LookalikeThreshold | null;
  warnings: LookalikeWarning[];
}

/** The guard of `gallery add`: existing classes that the new photos of `className` lie within the threshold of. */
export function checkNewClass(g: Gallery, newRows: Float32Array, className: string): NewClassCheck {
  const threshold = lookalikeThreshold(g);
  return { threshold, warnings: threshold ? lookalikesOf(g, newRows, threshold.value, { exclude: className }) : [] };
}

const thresholdText = (t: LookalikeThreshold): string =>
  t.source === 'calibrated'
    ? `the calibrated threshold ${t.value.toFixed(4)}`
    : `${t.value.toFixed(4)} (not calibrated: the median similarity of a photo to its own class's nearest photo)`;

/** The check in words, one line per look-alike class (empty when there is none). */
export function newClassWarnings(c: NewClassCheck, className: string): string[] {
  if (!c.threshold) return [];
  return c.warnings.map(
    (w) =>
      `'${className}' looks like '${w.class}': ${w.photos} of ${w.of} new photo(s) within ${thresholdText(c.threshold!)} ` +
      `(best similarity ${w.similarity.toFixed(4)}); the gallery may answer one for the other`,
  );
}

export interface LookalikeReport {
  threshold: LookalikeThreshold | null;
  pairs: GalleryLookalikePair[];
}

/** `gallery list --lookalikes`: the n closest class pairs with the threshold they are judged by. */
export function lookalikeReport(g: Gallery, n: number): LookalikeReport {
  const threshold = lookalikeThreshold(g);
  return { threshold, pairs: galleryLookalikePairs(g, n, threshold?.value ?? null) };
}

/** The report as text, one pair a line. */
export function lookalikeReportText(r: LookalikeReport): string {
  const head = r.threshold
    ? `closest class pairs by centroid cosine; "within": photos whose nearest photo of the other class reaches ${thresholdText(r.threshold)}`
    : 'closest class pairs by centroid cosine (no threshold: uncalibrated, and no class has two photos)';
  const lines = r.pairs.map(
    (p) =>
      `${p.centroidSimilarity.toFixed(4).padStart(8)}  ${p.a} <-> ${p.b}  best photo pair ${p.bestSimilarity.toFixed(4)}` +
      (r.threshold ? `, within: ${p.aWithin}/${p.aPhotos} and ${p.bWithin}/${p.bPhotos}` : ''),
  );
  return [head, ...(lines.length ? lines : ['(fewer than two classes)'])].join('\n');
}
