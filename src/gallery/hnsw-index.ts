// Gallery search on usearch (a maintained single-header HNSW library with a
// Node binding that ships prebuilt binaries): its SIMD brute force for small
// galleries without libtorch (the server), and its HNSW graph for large ones.
// Chosen by measurement over hnswlib-node and faiss-node (bench/gallery-search.ts,
// docs/gallery.md). The graph is saved next to the gallery file under a name
// holding the hash of the embeddings it indexes, so a stale graph is never used.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Index, MetricKind, ScalarKind, exactSearch, type BatchMatches } from 'usearch';
import { syncDirQuietly } from '../util/atomic-file.js';
import type { NeighbourIndex, SearchResult } from './neighbour-index.js';

/** HNSW settings (usearch's names): graph degree, and the candidate lists while adding and searching. */
export interface HnswSettings {
  connectivity: number;
  expansionAdd: number;
  expansionSearch: number;
}

export const DEFAULT_HNSW: HnswSettings = { connectivity: 16, expansionAdd: 128, expansionSearch: 128 };

const keysFor = (n: number): BigUint64Array => {
  const k = new BigUint64Array(n);
  for (let i = 0; i < n; i++) k[i] = BigInt(i);
  return k;
};

/** Rows of `keys`/`distances` (usearch: distance = 1 - inner product) as a SearchResult; missing neighbours are -1. */
function toResult(
  keys: BigUint64Array,
  distances: Float32Array,
  counts: ArrayLike<number | bigint>,
  q: number,
  k: number,
  size: number,
): SearchResult {
  const scores = new Float32Array(q * k).fill(-Infinity);
  const indices = new Int32Array(q * k).fill(-1);
  for (let i = 0; i < q; i++) {
    const c = Math.min(Number(counts[i]), k);
    for (let j = 0; j < c; j++) {
      const key = Number(keys[i * k + j]);
      if (key >= size) continue; // never: keys are row numbers
      indices[i * k + j] = key;
      scores[i * k + j] = 1 - distances[i * k + j]!;
    }
  }
  return { scores, indices, k };
}

/** Exact inner-product search with usearch's SIMD kernels (no libtorch). */
export class BruteForceIndex implements NeighbourIndex {
  readonly kind = 'exact';
  readonly size: number;
  constructor(
    private readonly rows: Float32Array,
    readonly dim: number,
    private readonly threads = 0,
  ) {
    this.size = rows.length / dim;
    if (!Number.isInteger(this.size))
      throw new RangeError(`BruteForceIndex: ${rows.length} floats are not rows of ${dim}`);
  }

  searchRows(queries: Float32Array, k: number): SearchResult {
    const q = queries.length / this.dim;
    const kk = Math.min(k, this.size);
    if (kk === 0 || q === 0) return { scores: new Float32Array(0), indices: new Int32Array(0), k: 0 };
    const m = exactSearch(this.rows, queries, this.dim, kk, MetricKind.IP, this.threads);
    if ('counts' in m) return toResult(m.keys, m.distances, m.counts, q, kk, this.size);
    return toResult(m.keys, m.distances, [m.keys.length], 1, kk, this.size);
  }

  dispose(): void {
    /* plain arrays */
  }
}

/** Approximate search on an HNSW graph (recall below 1: see the bench). */
export class HnswIndex implements NeighbourIndex {
  readonly kind = 'approximate';
  private constructor(
    private readonly index: Index,
    readonly dim: number,
    readonly size: number,
    private readonly threads: number,
  ) {}

  private static empty(dim: number, s: HnswSettings): Index {
    return new Index({
      dimensions: dim,
      metric: MetricKind.IP,
      quantization: ScalarKind.F32,
      multi: false,
      connectivity: s.connectivity,
      expansion_add: s.expansionAdd,
      expansion_search: s.expansionSearch,
    });
  }

  /** Builds the graph over row-major unit rows (row i gets key i); threads 0: all cores. */
  static build(rows: Float32Array, dim: number, s: HnswSettings = DEFAULT_HNSW, threads = 0): HnswIndex {
    const n = rows.length / dim;
    if (!Number.isInteger(n)) throw new RangeError(`HnswIndex: ${rows.length} floats are not rows of ${dim}`);
    const index = HnswIndex.empty(dim, s);
    if (n) index.add(keysFor(n), rows, threads);
    return new HnswIndex(index, dim, n, threads);
  }

  /** A graph saved by save(); throws unless it has `size` rows of width dim. */
  static load(path: string, dim: number, size: number, s: HnswSettings = DEFAULT_HNSW, threads = 0): HnswIndex {
    const index = HnswIndex.empty(dim, s);
    index.load(path);
    if (index.size() !== size) throw new Error(`${path}: an HNSW graph of ${index.size()} rows, expected ${size}`);
    return new HnswIndex(index, dim, size, threads);
  }

  /** Saves atomically: a temp file, fsynced, renamed over `path`. */
  save(path: string): void {
    const tmp = `${path}.tmp-${process.pid}`;
    try {
      this.index.save(tmp);
      const fd = openSync(tmp, 'r+');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw new Error(`${path}: cannot write the HNSW graph: ${(e as Error).message}`);
    }
    syncDirQuietly(dirname(path));
  }

  searchRows(queries: Float32Array, k: number): SearchResult {
    const q = queries.length / this.dim;
    const kk = Math.min(k, this.size);
    if (kk === 0 || q === 0) return { scores: new Float32Array(0), indices: new Int32Array(0), k: 0 };
    if (q === 1) {
      const m = this.index.search(queries, kk, 1);
      return toResult(m.keys, m.distances, [m.keys.length], 1, kk, this.size);
    }
    const m = this.index.search(queries, kk, this.threads) as BatchMatches;
    return toResult(m.keys, m.distances, m.counts, q, kk, this.size);
  }

  dispose(): void {
    /* freed with the object (usearch has no explicit free) */
  }
}

/** The file an HNSW graph over these embeddings is kept in, next to the gallery. */
export function hnswPathFor(galleryPath: string, embeddings: Float32Array): string {
  const h = createHash('sha256')
    .update(new Uint8Array(embeddings.buffer, embeddings.byteOffset, embeddings.byteLength))
    .digest('hex');
  return `${galleryPath}.${h.slice(0, 16)}.hnsw`;
}

/**
 * The graph for a gallery file's embeddings: loaded when saved before, else built and saved (graphs of
 * earlier versions of the gallery are deleted). Without a path it is only built.
 */
export function galleryHnsw(
  rows: Float32Array,
  dim: number,
  galleryPath: string | null,
  o: { settings?: HnswSettings; threads?: number; log?: (m: string) => void; graph?: string } = {},
): HnswIndex {
  const s = o.settings ?? DEFAULT_HNSW;
  const n = rows.length / dim;
  const file = o.graph ?? (galleryPath ? hnswPathFor(galleryPath, rows) : null);
  if (file && existsSync(file)) {
    try {
      return HnswIndex.load(file, dim, n, s, o.threads ?? 0);
    } catch (e) {
      o.log?.(`${(e as Error).message}; rebuilding it`);
    }
  }
  const t0 = performance.now();
  const index = HnswIndex.build(rows, dim, s, o.threads ?? 0);
  o.log?.(`HNSW graph over ${n} photos built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (file && galleryPath) {
    index.save(file);
    const stem = basename(galleryPath) + '.';
    for (const f of readdirSync(dirname(galleryPath))) {
      if (f.startsWith(stem) && f.endsWith('.hnsw') && join(dirname(galleryPath), f) !== file)
        rmSync(join(dirname(galleryPath), f), { force: true });
    }
  }
  return index;
}
