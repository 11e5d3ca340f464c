// Which index answers a gallery: exact search below a size (libtorch's matmul
// where libtorch is loaded, usearch's brute force in the server), usearch's
// HNSW graph from that size on (persisted next to the gallery file).
import { storedRowsOf, type Gallery } from './format.js';
import type { NeighbourIndex } from './neighbour-index.js';
import { BruteForceIndex, DEFAULT_HNSW, galleryHnsw } from './hnsw-index.js';

/** Photos from which a gallery is searched approximately (measured: docs/gallery.md, "Search that scales"). */
export const DEFAULT_APPROXIMATE_FROM = 50_000;

export interface OpenIndexOptions {
  /** The gallery file (the HNSW graph is kept next to it); null: build in memory only. */
  path?: string | null;
  /** Overrides the gallery's own setting (meta.search.approximateFrom). */
  approximateFrom?: number;
  /**
   * The exact index to use below the size (default usearch's brute force over the stored rows); gets f32 rows
   * (decoded for f16/i8). Not used for a gallery with refine rows (they re-score usearch's candidates).
   */
  exact?: (rows: Float32Array, dim: number) => NeighbourIndex;
  threads?: number;
  log?: (m: string) => void;
  /** A graph file already saved for exactly these rows (skips hashing the embeddings to find it). */
  graph?: string;
}

/** Whether a gallery is searched approximately (its size against its threshold). */
export function isApproximate(g: Gallery, approximateFrom?: number): boolean {
  return g.meta.entries.length >= (approximateFrom ?? g.meta.search?.approximateFrom ?? DEFAULT_APPROXIMATE_FROM);
}

export function openGalleryIndex(g: Gallery, o: OpenIndexOptions = {}): NeighbourIndex {
  const { dim } = g.meta;
  const refine = g.refine ?? null;
  // with refine rows, usearch's brute force (its candidates re-scored from the file), not the caller's exact search
  if (!isApproximate(g, o.approximateFrom))
    return o.exact && !refine
      ? o.exact(g.embeddings, dim)
      : new BruteForceIndex(storedRowsOf(g), dim, o.threads ?? 0, refine);
  const settings = { ...DEFAULT_HNSW, ...(g.meta.search?.hnsw ?? {}) };
  return galleryHnsw(storedRowsOf(g), dim, o.path ?? null, {
    settings,
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
    ...(o.graph ? { graph: o.graph } : {}),
    ...(o.log ? { log: o.log } : {}),
    refine,
  });
}
