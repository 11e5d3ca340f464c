// What recognition needs of a nearest-neighbour index over a gallery's unit
// rows, whatever computes it: exact search on libtorch (search.ts), or
// usearch's brute force and HNSW graph (hnsw-index.ts). Scores are cosine
// similarities (inner products of unit rows), best first.

export interface SearchResult {
  /** [queries * k] cosine similarities, best first per query. */
  scores: Float32Array;
  /** [queries * k] gallery row indices. */
  indices: Int32Array;
  /** Neighbours per query (k, or fewer when the gallery is smaller). */
  k: number;
}

export interface NeighbourIndex {
  /** 'exact' answers the true nearest rows; 'approximate' may miss some (recall measured in bench/gallery-search.ts). */
  readonly kind: 'exact' | 'approximate';
  readonly size: number;
  /** The k most similar rows for each query row (queries: row-major [q, dim], unit rows). */
  searchRows(queries: Float32Array, k: number): SearchResult;
  dispose(): void;
}
