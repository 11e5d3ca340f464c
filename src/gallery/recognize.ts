// Recognition through a gallery: cosine k-NN search, a similarity-weighted
// vote among the k neighbours (normalised per class, so that a product enrolled
// with one photo is not outvoted by a class with thirty), and "unknown product"
// when the best match is below the gallery's threshold. Calibration picks that threshold from
// held-out known and unknown photos for a target false-accept rate.
import { galleryClasses, type Gallery } from './format.js';
import type { NeighbourIndex } from './neighbour-index.js';

export interface GalleryVote {
  class: string;
  index: number;
  votes: number;
  similarity: number;
}

export interface GalleryAnswer {
  /** Best class, or null for "unknown product" (best similarity below the threshold). */
  class: string | null;
  unknown: boolean;
  /** Cosine similarity of the nearest gallery photo. */
  similarity: number;
  /**
   * Classes among the neighbours, best first, by vote: the sum of the class's neighbour similarities divided
   * by min(k, the class's photos in the gallery), i.e. how well its best photos match.
   */
  top: GalleryVote[];
  neighbours: { class: string; path: string; similarity: number }[];
}

/** A gallery ready to answer queries: the index, its classes and its voting settings. */
export class GalleryMatcher {
  readonly classes: string[];
  private readonly classIndex: Map<string, number>;
  private readonly classPhotos = new Map<string, number>();

  /** index: over gallery.embeddings (open-index.ts picks exact or approximate by size); the matcher owns it. */
  constructor(
    readonly gallery: Gallery,
    readonly index: NeighbourIndex,
  ) {
    if (index.size !== gallery.meta.entries.length)
      throw new RangeError(`GalleryMatcher: an index of ${index.size} rows for ${gallery.meta.entries.length} entries`);
    this.classes = galleryClasses(gallery);
    this.classIndex = new Map(this.classes.map((c, i) => [c, i]));
    for (const e of gallery.meta.entries) this.classPhotos.set(e.class, (this.classPhotos.get(e.class) ?? 0) + 1);
  }

  /**
   * Answers for unit-length query rows [q * dim]. A neighbour whose source photo is the query's own
   * (queryPaths[i]) is skipped, so a gallery can be evaluated on the photos it was built from (leave-one-out).
   */
  match(
    queries: Float32Array,
    o: { k?: number; threshold?: number | null; queryPaths?: readonly (string | undefined)[] } = {},
  ): GalleryAnswer[] {
    const dim = this.gallery.meta.dim;
    const q = queries.length / dim;
    if (!Number.isInteger(q)) throw new RangeError(`match: ${queries.length} floats are not rows of ${dim}`);
    const k = o.k ?? this.gallery.meta.k;
    const threshold = o.threshold === undefined ? this.gallery.meta.threshold : o.threshold;
    const res = this.index.searchRows(queries, k + (o.queryPaths ? 1 : 0));
    const entries = this.gallery.meta.entries;
    const out: GalleryAnswer[] = [];
    for (let i = 0; i < q; i++) {
      const self = o.queryPaths?.[i];
      const neighbours: GalleryAnswer['neighbours'] = [];
      for (let j = 0; j < res.k && neighbours.length < k; j++) {
        const row = res.indices[i * res.k + j]!;
        if (row < 0) continue; // an approximate index found fewer than k
        const e = entries[row]!;
        if (self !== undefined && e.path === self) continue;
        neighbours.push({ class: e.class, path: e.path, similarity: res.scores[i * res.k + j]! });
      }
      const votes = new Map<string, GalleryVote>();
      for (const n of neighbours) {
        const v = votes.get(n.class) ?? {
          class: n.class,
          index: this.classIndex.get(n.class)!,
          votes: 0,
          similarity: -Infinity,
        };
        v.votes += Math.max(n.similarity, 0);
        v.similarity = Math.max(v.similarity, n.similarity);
        votes.set(n.class, v);
      }
      // A class can fill at most min(k, its photos) of the k places: without this, one enrolled photo could
      // never outvote the several neighbours of a class with many photos.
      for (const v of votes.values()) v.votes /= Math.min(neighbours.length, this.classPhotos.get(v.class) ?? 1);
      const top = [...votes.values()].sort((a, b) => b.votes - a.votes || b.similarity - a.similarity);
      const similarity = neighbours[0]?.similarity ?? -Infinity;
      const unknown = top.length === 0 || (threshold !== null && similarity < threshold);
      out.push({ class: unknown ? null : top[0]!.class, unknown, similarity, top, neighbours });
    }
    return out;
  }

  dispose(): void {
    this.index.dispose();
  }
}

/** Area under the ROC curve of "known scores above unknown scores" (ties count half). */
export function auroc(known: readonly number[], unknown: readonly number[]): number {
  if (!known.length || !unknown.length) return NaN;
  const all = [...known.map((s) => ({ s, k: 1 })), ...unknown.map((s) => ({ s, k: 0 }))].sort((a, b) => a.s - b.s);
  // Mann-Whitney U with mid-ranks for ties.
  let rankSum = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j]!.s === all[i]!.s) j++;
    const mid = (i + 1 + j) / 2;
    for (let t = i; t < j; t++) if (all[t]!.k) rankSum += mid;
    i = j;
  }
  return (rankSum - (known.length * (known.length + 1)) / 2) / (known.length * unknown.length);
}

/**
 * The smallest threshold whose false-accept rate on the unknown scores is at most targetFar
 * (accept when similarity >= threshold), with the rates it gives.
 */
export function thresholdForFar(
  known: readonly number[],
  unknown: readonly number[],
  targetFar: number,
): { threshold: number; far: number; tar: number } {
  if (!(targetFar >= 0 && targetFar < 1))
    throw new RangeError(`--far: expected a rate in [0, 1) but received ${targetFar}`);
  if (!unknown.length) throw new Error('calibration needs at least one unknown photo');
  const u = [...unknown].sort((a, b) => b - a);
  const allowed = Math.floor(targetFar * u.length);
  // Just above the (allowed+1)-th highest unknown score: at most `allowed` unknown scores reach it.
  const pivot = u[allowed] ?? -Infinity;
  const threshold = pivot + Math.max(Math.abs(pivot) * 1e-6, 1e-6);
  const far = u.filter((s) => s >= threshold).length / u.length;
  const tar = known.length ? known.filter((s) => s >= threshold).length / known.length : NaN;
  return { threshold, far, tar };
}
