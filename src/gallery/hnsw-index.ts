// Gallery search on usearch (a maintained single-header HNSW library with a
// Node binding that ships prebuilt binaries): its SIMD brute force for small
// galleries without libtorch (the server), and its HNSW graph for large ones.
// Chosen by measurement over hnswlib-node and faiss-node (bench/gallery-search.ts,
// docs/gallery.md). The graph is saved next to the gallery file under a name
// holding the hash of the embeddings it indexes, so a stale graph is never used.
// An f16/i8 gallery's graph holds its vectors in that precision (usearch's own
// quantization: the memory is the point): f16 by inner product (queries rounded
// to f16), i8 by usearch's integer cosine of per-vector scaled codes (vectors.ts),
// each query quantized the same way. No f32 copy is kept in memory: the few
// candidates usearch returns (2k + 8) are re-scored against the gallery's own
// stored rows (f32 query against the decoded row, float64), because usearch's
// i8 cosine in the graph is coarse (measured: the exact top-1 was among its top
// 10 every time, but first only 93.5 % of the time, against 99 % for the same
// codes scored exactly); the scores are then the same as exact search over the
// decoded rows gives. A gallery with refine rows (refine.ts: its f32 rows kept
// in the file) re-scores the same candidates against those instead, read from
// the file one row at a time: exact f32 scores (recall@1 1.000 exact, 0.998
// through the graph at 100k x 512, docs/gallery.md), 2k + 8 reads per query.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Index, MetricKind, ScalarKind, exactSearch, type BatchMatches } from 'usearch';
import { syncDirQuietly } from '../util/atomic-file.js';
import type { NeighbourIndex, SearchResult } from './neighbour-index.js';
import { refineSimilarities, type RefineRows } from './refine.js';
import { decodeF16, quantizeRows, rowSimilarity, type StoredRows, type VectorPrecision } from './vectors.js';

/** Rows given to an index: f32 unit rows, or a gallery's stored rows. */
export type IndexRows = Float32Array | StoredRows;

const stored = (rows: IndexRows): StoredRows =>
  rows instanceof Float32Array ? { precision: 'f32', data: rows } : rows;

/** usearch settings per precision: i8 codes have one scale per row, so only a cosine compares them. */
const USEARCH_KIND: Record<VectorPrecision, { quantization: ScalarKind; metric: MetricKind }> = {
  f32: { quantization: ScalarKind.F32, metric: MetricKind.IP },
  f16: { quantization: ScalarKind.F16, metric: MetricKind.IP },
  i8: { quantization: ScalarKind.I8, metric: MetricKind.Cos },
};

/** Queries as the index takes them: i8 indexes get codes quantized like the rows (usearch's own cast scales by the norm, not the max). */
const queriesFor = (p: VectorPrecision, queries: Float32Array, dim: number): Float32Array | Int8Array =>
  p === 'i8' ? quantizeRows(queries, dim) : queries;

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

/** Candidates usearch is asked for when they are re-scored: enough that its coarse order rarely drops the best. */
const candidatesFor = (k: number, size: number): number => Math.min(size, 2 * k + 8);

/**
 * The k best of each query's candidates, re-scored exactly against the stored rows, or against the f32 refine
 * rows when the gallery has them (one positioned read per candidate row); missing ones stay -1.
 */
function rescore(
  c: SearchResult,
  queries: Float32Array,
  rows: StoredRows,
  dim: number,
  k: number,
  refine: RefineRows | null,
): SearchResult {
  const q = queries.length / dim;
  const kk = Math.min(k, c.k);
  const scores = new Float32Array(q * kk).fill(-Infinity);
  const indices = new Int32Array(q * kk).fill(-1);
  for (let i = 0; i < q; i++) {
    const cand: number[] = [];
    for (let j = 0; j < c.k; j++) {
      const row = c.indices[i * c.k + j]!;
      if (row >= 0) cand.push(row);
    }
    const sims = refine
      ? refineSimilarities(refine, dim, cand, queries, i * dim)
      : cand.map((row) => rowSimilarity(rows, dim, row, queries, i * dim));
    const found = cand.map((row, j) => ({ row, s: sims[j]! }));
    found.sort((a, b) => b.s - a.s || a.row - b.row);
    for (let j = 0; j < Math.min(kk, found.length); j++) {
      scores[i * kk + j] = found[j]!.s;
      indices[i * kk + j] = found[j]!.row;
    }
  }
  return { scores, indices, k: kk };
}

/**
 * Exact search with usearch's SIMD kernels (no libtorch): inner product over f32 rows, cosine over i8 codes;
 * f16 rows are searched decoded to f32 (usearch's exact search takes no f16), so they save disk, not memory.
 */
export class BruteForceIndex implements NeighbourIndex {
  readonly kind = 'exact';
  readonly size: number;
  private readonly rows: Float32Array | Int8Array;
  private readonly precision: VectorPrecision;
  private readonly stored: StoredRows;
  constructor(
    rows: IndexRows,
    readonly dim: number,
    private readonly threads = 0,
    /** The gallery's f32 refine rows (on disk), which re-score the candidates. */
    private readonly refine: RefineRows | null = null,
  ) {
    const s = stored(rows);
    this.stored = s;
    this.precision = s.precision;
    this.rows = s.precision === 'f16' ? decodeF16(s.data) : s.data;
    this.size = s.data.length / dim;
    if (!Number.isInteger(this.size))
      throw new RangeError(`BruteForceIndex: ${s.data.length} values are not rows of ${dim}`);
  }

  searchRows(queries: Float32Array, k: number): SearchResult {
    const q = queries.length / this.dim;
    const kk = Math.min(k, this.size);
    if (kk === 0 || q === 0) return { scores: new Float32Array(0), indices: new Int32Array(0), k: 0 };
    if (this.precision === 'f32' || (this.precision === 'f16' && !this.refine)) {
      const m = exactSearch(this.rows, queries, this.dim, kk, MetricKind.IP, this.threads);
      if ('counts' in m) return toResult(m.keys, m.distances, m.counts, q, kk, this.size);
      return toResult(m.keys, m.distances, [m.keys.length], 1, kk, this.size);
    }
    // i8: usearch's integer cosine picks the candidates, the stored codes (or the refine rows) score them (see
    // the top of the file); f16 with refine rows: the decoded rows pick them, the refine rows score them.
    const kc = candidatesFor(kk, this.size);
    const metric = this.precision === 'i8' ? MetricKind.Cos : MetricKind.IP;
    const m = exactSearch(this.rows, queriesFor(this.precision, queries, this.dim), this.dim, kc, metric, this.threads);
    const c =
      'counts' in m
        ? toResult(m.keys, m.distances, m.counts, q, kc, this.size)
        : toResult(m.keys, m.distances, [m.keys.length], 1, kc, this.size);
    return rescore(c, queries, this.stored, this.dim, kk, this.refine);
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
    /** The rows the graph holds (f16/i8: candidates are re-scored against them); null for f32. */
    private readonly rows: StoredRows | null,
    /** The gallery's f32 refine rows (on disk): they re-score the candidates instead. */
    private readonly refine: RefineRows | null = null,
  ) {}

  get precision(): VectorPrecision {
    return this.rows?.precision ?? 'f32';
  }

  private static empty(dim: number, s: HnswSettings, p: VectorPrecision): Index {
    return new Index({
      dimensions: dim,
      ...USEARCH_KIND[p],
      multi: false,
      connectivity: s.connectivity,
      expansion_add: s.expansionAdd,
      expansion_search: s.expansionSearch,
    });
  }

  /**
   * Builds the graph over row-major unit rows (row i gets key i), holding them in their precision
   * (f16 rows are handed over in decoded slices, so no whole f32 copy is made); threads 0: all cores.
   */
  static build(
    rows: IndexRows,
    dim: number,
    s: HnswSettings = DEFAULT_HNSW,
    threads = 0,
    refine: RefineRows | null = null,
  ): HnswIndex {
    const st = stored(rows);
    const n = st.data.length / dim;
    if (!Number.isInteger(n)) throw new RangeError(`HnswIndex: ${st.data.length} values are not rows of ${dim}`);
    const index = HnswIndex.empty(dim, s, st.precision);
    if (st.precision !== 'f16') {
      if (n) index.add(keysFor(n), st.data, threads);
    } else {
      const slice = 8192;
      for (let a = 0; a < n; a += slice) {
        const b = Math.min(n, a + slice);
        const keys = new BigUint64Array(b - a).map((_, i) => BigInt(a + i));
        index.add(keys, decodeF16(st.data.subarray(a * dim, b * dim)), threads); // exact: f16 -> f32 -> f16
      }
    }
    return new HnswIndex(index, dim, n, threads, st.precision === 'f32' ? null : st, refine);
  }

  /**
   * A graph saved by save(); throws unless it has `size` rows. `rows`: the f16/i8 rows it was built from
   * (hnswPathFor names graphs by precision), which re-score its candidates; absent: an f32 graph.
   */
  static load(
    path: string,
    dim: number,
    size: number,
    s: HnswSettings = DEFAULT_HNSW,
    threads = 0,
    rows?: StoredRows,
    refine: RefineRows | null = null,
  ): HnswIndex {
    const p = rows?.precision ?? 'f32';
    if (rows && rows.data.length !== size * dim)
      throw new RangeError(`${path}: ${rows.data.length} stored values for ${size} rows of ${dim}`);
    const index = HnswIndex.empty(dim, s, p);
    index.load(path);
    if (index.size() !== size) throw new Error(`${path}: an HNSW graph of ${index.size()} rows, expected ${size}`);
    return new HnswIndex(index, dim, size, threads, p === 'f32' ? null : rows!, refine);
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
    const qs = queriesFor(this.precision, queries, this.dim);
    const kc = this.rows ? candidatesFor(kk, this.size) : kk;
    let c: SearchResult;
    if (q === 1) {
      const m = this.index.search(qs, kc, 1);
      c = toResult(m.keys, m.distances, [m.keys.length], 1, kc, this.size);
    } else {
      const m = this.index.search(qs, kc, this.threads) as BatchMatches;
      c = toResult(m.keys, m.distances, m.counts, q, kc, this.size);
    }
    return this.rows ? rescore(c, queries, this.rows, this.dim, kk, this.refine) : c;
  }

  dispose(): void {
    /* freed with the object (usearch has no explicit free) */
  }
}

/**
 * The file an HNSW graph over these rows is kept in, next to the gallery: the hash of the stored bytes, and
 * of the precision when it is not f32 (so f32 graphs keep the names they had before precisions existed).
 */
export function hnswPathFor(galleryPath: string, rows: IndexRows): string {
  const s = stored(rows);
  const h = createHash('sha256');
  if (s.precision !== 'f32') h.update(`goodsrec-gallery-${s.precision}\n`);
  h.update(new Uint8Array(s.data.buffer, s.data.byteOffset, s.data.byteLength));
  return `${galleryPath}.${h.digest('hex').slice(0, 16)}.hnsw`;
}

/**
 * The graph for a gallery file's embeddings: loaded when saved before, else built and saved (graphs of
 * earlier versions of the gallery are deleted). Without a path it is only built.
 */
export function galleryHnsw(
  rows: IndexRows,
  dim: number,
  galleryPath: string | null,
  o: {
    settings?: HnswSettings;
    threads?: number;
    log?: (m: string) => void;
    graph?: string;
    /** The gallery's f32 refine rows, which re-score the graph's candidates. */
    refine?: RefineRows | null;
  } = {},
): HnswIndex {
  const s = o.settings ?? DEFAULT_HNSW;
  const st = stored(rows);
  const n = st.data.length / dim;
  const file = o.graph ?? (galleryPath ? hnswPathFor(galleryPath, st) : null);
  if (file && existsSync(file)) {
    try {
      return HnswIndex.load(file, dim, n, s, o.threads ?? 0, st.precision === 'f32' ? undefined : st, o.refine);
    } catch (e) {
      o.log?.(`${(e as Error).message}; rebuilding it`);
    }
  }
  const t0 = performance.now();
  const index = HnswIndex.build(st, dim, s, o.threads ?? 0, o.refine);
  o.log?.(`HNSW graph (${st.precision}) over ${n} photos built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
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
