// Gallery search: exact cosine k-NN on libtorch (chunked matmul + topk,
// src/gallery/search.ts) against the approximate HNSW indexes of usearch and
// hnswlib-node, over N unit vectors of width D: random (uniform on the sphere)
// and clustered (N/20 products, 20 noisy photos each, queries are new photos of
// them). Recall@1: the approximate top-1 is the exact top-1. Latency: median of
// single queries and of 32-query batches on the configured threads.
// GOODSREC_BENCH_SIZES=10000,100000,1000000 GOODSREC_BENCH_DIM=512 GOODSREC_BENCH_THREADS=2
// GOODSREC_BENCH_LIBS=exact,usearch,hnswlib GOODSREC_BENCH_SETS=random,clustered GOODSREC_BENCH_EF=64,128 GOODSREC_BENCH_QUERIES=200
// usearch's graph: GOODSREC_BENCH_M=16 (connectivity) GOODSREC_BENCH_EF_ADD=128 GOODSREC_BENCH_QUANT=f32|f16|i8; it is
// built once and reloaded for each search ef (saved to GOODSREC_BENCH_TMP, default the OS temp folder), and the build
// prints its rate to stderr every 5 % so a build stopped by a time limit still leaves a measured rate.
//
// Gallery vector precisions (issue 27 item 5): GOODSREC_BENCH_VECTORS=f32,f16,i8 instead compares goodsrec's own
// indexes (src/gallery/hnsw-index.ts: usearch brute force and HNSW graph, holding the vectors in each precision,
// candidates re-scored against the stored rows) against exact f32 search (libtorch): recall@1, recall@1 up to
// ties (the row found is within 1e-4 of the best f32 similarity), same product@1, the bytes of the vectors and of
// the whole index (the HNSW graph as saved: vectors + links), and ms per query. GOODSREC_BENCH_SETS may name
// `real:<gallery file>`: its rows, every (N/1000)-th held out as a query (1000 queries), classes from its entries.
// A precision may be given as `i8+refine` or `f16+refine`: the gallery is written to a file (GOODSREC_BENCH_TMP) with
// its f32 rows as the refine tensor and read back, so candidates are re-scored from the file (positioned reads);
// its HNSW graph is the plain precision's (built once, reloaded). Columns then add the file's bytes on disk.
import { createRequire } from 'node:module';
import { rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { ExactIndex } from '../src/gallery/search.js';
import { readGallery, withPrecision, writeGallery } from '../src/gallery/format.js';
import { BruteForceIndex, HnswIndex, type HnswSettings } from '../src/gallery/hnsw-index.js';
import type { RefineRows } from '../src/gallery/refine.js';
import type { NeighbourIndex } from '../src/gallery/neighbour-index.js';
import { encodeRows, isVectorPrecision, type StoredRows } from '../src/gallery/vectors.js';
import { standInGallery } from '../test/helpers/stand-in-gallery.js';
import { machineLine } from './machine.js';

const sizes = (process.env.GOODSREC_BENCH_SIZES ?? '10000,100000').split(',').map(Number);
const dim = Number(process.env.GOODSREC_BENCH_DIM ?? 512);
const threads = Number(process.env.GOODSREC_BENCH_THREADS ?? 2);
const libs = (process.env.GOODSREC_BENCH_LIBS ?? 'exact,usearch,hnswlib').split(',');
const sets = (process.env.GOODSREC_BENCH_SETS ?? 'random,clustered').split(',');
const efs = (process.env.GOODSREC_BENCH_EF ?? '64').split(',').map(Number);
const connectivity = Number(process.env.GOODSREC_BENCH_M ?? 16);
const efAdd = Number(process.env.GOODSREC_BENCH_EF_ADD ?? 128);
const quant = process.env.GOODSREC_BENCH_QUANT ?? 'f32';
const tmp = process.env.GOODSREC_BENCH_TMP ?? tmpdir();
const nQueries = Number(process.env.GOODSREC_BENCH_QUERIES ?? 200);
T.setNumThreads(threads);
const require = createRequire(import.meta.url);

function normalise(x: T.Tensor): T.Tensor {
  return x.div(x.norm(2, 1, true));
}

/**
 * n gallery rows and nQueries query rows. Clustered: 20 photos per product, noise ~ as far as a photo of another
 * angle; row i shows product i % products, `queryProducts` the queries' (null for random: no products).
 */
function vectors(
  set: string,
  n: number,
  seed: number,
): { rows: Float32Array; queries: Float32Array; products: number; queryProducts: Int32Array | null } {
  T.manualSeed(seed);
  return T.tidy(() => {
    if (set === 'random') {
      return {
        rows: normalise(T.randn([n, dim]))
          .data<'float32'>()
          .slice(),
        queries: normalise(T.randn([nQueries, dim]))
          .data<'float32'>()
          .slice(),
        products: 0,
        queryProducts: null,
      };
    }
    const products = Math.max(1, Math.floor(n / 20));
    const centres = normalise(T.randn([products, dim]));
    const photo = (idx: T.Tensor): T.Tensor =>
      normalise(centres.indexSelect(0, idx).add(T.randn([idx.shape[0]!, dim]).mul(0.6 / Math.sqrt(dim))));
    const rows = new Float32Array(n * dim);
    for (let s = 0; s < n; s += 65536) {
      const len = Math.min(65536, n - s);
      rows.set(
        T.tidy(() =>
          photo(
            T.arange(s, s + len, 1, { dtype: 'int64' }).remainder(T.scalar(products, { dtype: 'int64' })),
          ).data<'float32'>(),
        ),
        s * dim,
      );
    }
    const qIdx = T.randint(0, products, [nQueries], { dtype: 'int64' });
    const q = photo(qIdx).data<'float32'>().slice();
    return { rows, queries: q, products, queryProducts: Int32Array.from(qIdx.data<'int64'>(), Number) };
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface Searcher {
  name: string;
  buildS: number;
  search(q: Float32Array, rows: number, k: number): Int32Array[];
  free?(): void;
}

function exact(rows: Float32Array): Searcher {
  const t0 = performance.now();
  const index = new ExactIndex(rows, dim);
  const buildS = (performance.now() - t0) / 1000;
  return {
    name: 'exact (libtorch)',
    buildS,
    search(q, r, k) {
      const res = T.tidy(() => index.search(T.tensor(q.subarray(0, r * dim), [r, dim]), k));
      return Array.from({ length: r }, (_, i) => res.indices.subarray(i * res.k, (i + 1) * res.k));
    },
    free: () => index.dispose(),
  };
}

type USearch = typeof import('usearch');
const quantKinds = { f32: 'F32', f16: 'F16', i8: 'I8' } as const;
if (!(quant in quantKinds)) throw new Error(`GOODSREC_BENCH_QUANT=${quant}: expected f32, f16 or i8`);

function usearchConfig(u: USearch, ef: number): ConstructorParameters<USearch['Index']>[0] {
  return {
    dimensions: dim,
    metric: u.MetricKind.IP,
    quantization: u.ScalarKind[quantKinds[quant as keyof typeof quantKinds]],
    connectivity,
    expansion_add: efAdd,
    expansion_search: ef,
    multi: false,
  };
}

/** Builds the graph once (in 5 % slices, printing the rate), saves it; returns its file and build seconds. */
function usearchBuild(rows: Float32Array, n: number, label: string): { file: string; buildS: number } {
  const u = require('usearch') as USearch; // the dependency src/gallery/hnsw-index.ts uses
  const index = new u.Index(usearchConfig(u, 64));
  const t0 = performance.now();
  const slice = Math.max(1, Math.ceil(n / 20));
  for (let s = 0; s < n; s += slice) {
    const e = Math.min(n, s + slice);
    const keys = new BigUint64Array(e - s).map((_, i) => BigInt(s + i));
    index.add(keys, rows.subarray(s * dim, e * dim), threads);
    const secs = (performance.now() - t0) / 1000;
    console.error(`${label}: ${e}/${n} added, ${secs.toFixed(0)} s, ${(e / secs).toFixed(0)} vectors/s overall`);
  }
  const buildS = (performance.now() - t0) / 1000;
  const file = join(tmp, `gallery-search-bench-${process.pid}.usearch`);
  index.save(file);
  return { file, buildS };
}

/** A saved graph loaded with expansion_search ef (it is a search-time setting, not stored in the file). */
function usearch(built: { file: string; buildS: number }, ef: number): Searcher {
  const u = require('usearch') as USearch;
  const index = new u.Index(usearchConfig(u, ef));
  index.load(built.file);
  return {
    name: `usearch ${quant} M=${connectivity} efAdd=${efAdd} ef=${ef}`,
    buildS: built.buildS,
    search(q, r, k) {
      if (r === 1) return [Int32Array.from(index.search(q.subarray(0, dim), k, 1).keys, Number)];
      const m = index.search(q.subarray(0, r * dim), k, threads) as import('usearch').BatchMatches;
      return Array.from({ length: r }, (_, i) => Int32Array.from(m.keys.subarray(i * k, (i + 1) * k), Number));
    },
  };
}

/** The part of hnswlib-node (not a dependency: `npm install --no-save hnswlib-node` to compare) the bench uses. */
interface HnswlibNode {
  HierarchicalNSW: new (
    space: 'ip',
    dim: number,
  ) => {
    initIndex(o: { maxElements: number; m: number; efConstruction: number }): void;
    addPoint(p: number[], label: number): void;
    setEf(ef: number): void;
    searchKnn(q: number[], k: number): { neighbors: number[] };
  };
}

function hnswlib(rows: Float32Array, n: number, ef: number): Searcher {
  const h = require('hnswlib-node') as HnswlibNode;
  const t0 = performance.now();
  const index = new h.HierarchicalNSW('ip', dim);
  index.initIndex({ maxElements: n, m: 16, efConstruction: 128 });
  for (let i = 0; i < n; i++) index.addPoint(Array.from(rows.subarray(i * dim, (i + 1) * dim)), i);
  index.setEf(ef);
  const buildS = (performance.now() - t0) / 1000;
  return {
    name: `hnswlib-node M=16 ef=${ef}`,
    buildS,
    search(q, r, k) {
      return Array.from({ length: r }, (_, i) =>
        Int32Array.from(index.searchKnn(Array.from(q.subarray(i * dim, (i + 1) * dim)), k).neighbors),
      );
    },
  };
}

const precisions = (process.env.GOODSREC_BENCH_VECTORS ?? '').split(',').filter(Boolean);
if (precisions.length) {
  precisionTable(precisions);
  process.exit(0);
}

console.log(
  `D=${dim}, k=5, ${threads} threads, ${nQueries} queries for recall@1 (approximate top-1 = exact top-1); ` +
    `usearch ${quant}, connectivity ${connectivity}, expansion_add ${efAdd}`,
);
// same product@1: the top-1 row shows the query's product (clustered only), what a gallery's answer needs.
console.log(
  '| set | vectors | search | build (s) | recall@1 | same product@1 | 1 query (ms) | 32 queries (ms per batch) |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const n of sizes) {
  for (const set of sets) {
    const { rows, queries, products, queryProducts } = vectors(set, n, 1);
    const ex = exact(rows);
    const truth = ex.search(queries, nQueries, 1).map((r) => r[0]!);
    const searchers: (() => Searcher)[] = [];
    if (libs.includes('exact')) searchers.push(() => ex);
    let built: { file: string; buildS: number } | null = null;
    for (const ef of efs) {
      if (libs.includes('usearch'))
        searchers.push(() => usearch((built ??= usearchBuild(rows, n, `usearch ${set} ${n}`)), ef));
      if (libs.includes('hnswlib')) searchers.push(() => hnswlib(rows, n, ef));
    }
    for (const make of searchers) {
      const s = make();
      const found = s.search(queries, nQueries, 5);
      const recall = found.filter((r, i) => r[0] === truth[i]).length / nQueries;
      const sameProduct = queryProducts
        ? (found.filter((r, i) => r[0]! % products === queryProducts[i]).length / nQueries).toFixed(3)
        : '-';
      const reps = n >= 1_000_000 ? 10 : 30;
      const time = (r: number): number => {
        s.search(queries, r, 5);
        const ts: number[] = [];
        for (let i = 0; i < reps; i++) {
          const t0 = performance.now();
          s.search(queries.subarray((i % 4) * dim), r, 5);
          ts.push(performance.now() - t0);
        }
        return median(ts);
      };
      console.log(
        `| ${set} | ${n} | ${s.name} | ${s.buildS.toFixed(1)} | ${recall.toFixed(3)} | ${sameProduct} | ${time(1).toFixed(3)} | ${time(32).toFixed(2)} |`,
      );
      if (s !== ex) s.free?.();
    }
    ex.free?.();
    if (built) rmSync((built as { file: string }).file, { force: true });
  }
}

/** A real gallery's rows: every (N/1000)-th row held out as a query, the rest the gallery; classes per row. */
function realSet(path: string): {
  rows: Float32Array;
  queries: Float32Array;
  d: number;
  rowClass: string[];
  queryClass: string[];
} {
  const g = readGallery(path);
  const d = g.meta.dim;
  const n = g.meta.entries.length;
  const nq = Math.min(1000, Math.floor(n / 10));
  const step = Math.floor(n / nq);
  const isQuery = (i: number): boolean => i % step === 0 && i / step < nq;
  const rows = new Float32Array((n - nq) * d);
  const queries = new Float32Array(nq * d);
  const rowClass: string[] = [];
  const queryClass: string[] = [];
  for (let i = 0, r = 0, q = 0; i < n; i++) {
    const v = g.embeddings.subarray(i * d, (i + 1) * d);
    if (isQuery(i)) {
      queries.set(v, q++ * d);
      queryClass.push(g.meta.entries[i]!.class);
    } else {
      rows.set(v, r++ * d);
      rowClass.push(g.meta.entries[i]!.class);
    }
  }
  return { rows, queries, d, rowClass, queryClass };
}

/** Rows per precision and index: recall against exact f32 search, memory and time. */
function precisionTable(names: string[]): void {
  const ps = names.map((name) => {
    const [p, extra] = name.split('+');
    if (!isVectorPrecision(p) || (extra !== undefined && (extra !== 'refine' || p === 'f32')))
      throw new Error(`GOODSREC_BENCH_VECTORS: '${name}' is not f32, f16, i8, f16+refine or i8+refine`);
    return { p, refine: extra === 'refine', name };
  });
  console.log(machineLine({ threads }));
  console.log(
    `k=5, ${threads} threads; HNSW connectivity ${connectivity}, expansion_add ${efAdd}, expansion_search ${efs.join('/')}; ` +
      'recall@1 against exact f32 search (libtorch); ties: the row found is within 1e-4 of the best f32 similarity',
  );
  console.log(
    '| set | vectors | D | precision | search | recall@1 | recall@1 up to ties | same product@1 | vectors (MB) | index (MB) | file (MB) | build (s) | 1 query (ms) | 32 queries (ms per batch) |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  const mb = (b: number): string => (b / 2 ** 20).toFixed(1);
  for (const set of sets) {
    for (const n0 of set.startsWith('real:') ? [0] : sizes) {
      let rows: Float32Array;
      let queries: Float32Array;
      let d = dim;
      let same: (q: number, row: number) => boolean;
      if (set.startsWith('real:')) {
        const r = realSet(set.slice(5));
        ({ rows, queries, d } = r);
        same = (q, row) => r.queryClass[q] === r.rowClass[row];
      } else {
        const v = vectors(set, n0, 1);
        ({ rows, queries } = v);
        same = (q, row) => v.queryProducts !== null && row % v.products === v.queryProducts[q];
      }
      const n = rows.length / d;
      const nq = queries.length / d;
      const ex = new ExactIndex(rows, d);
      const truth = ex.searchRows(queries, 1);
      ex.dispose();
      const f32Sim = (q: number, row: number): number => {
        let s = 0;
        for (let i = 0; i < d; i++) s += queries[q * d + i]! * rows[row * d + i]!;
        return s;
      };
      const label = set.startsWith('real:') ? `real (${set.slice(5).split('/').slice(-3).join('/')})` : set;
      // one graph per precision and ef, shared by its +refine row (the graph holds the same rows)
      const graphs = new Map<string, { file: string; buildS: number }>();
      for (const { p, refine: withRefine, name } of ps) {
        let stored: StoredRows = encodeRows(rows, d, p);
        let refine: RefineRows | null = null;
        let fileBytes = stored.data.byteLength;
        if (withRefine) {
          const path = join(tmp, `gallery-precision-bench-${process.pid}-${p}.gallery`);
          writeGallery(
            path,
            withPrecision(
              standInGallery(rows, d, (i) => ({ class: `p${i}`, path: `-/${i}` })),
              p,
              true,
            ),
          );
          const g = readGallery(path);
          stored = g.stored!;
          refine = g.refine!;
          fileBytes = statSync(path).size;
        }
        const kinds: { name: string; make: () => { index: NeighbourIndex; bytes: number; buildS: number } }[] = [];
        if (libs.includes('exact'))
          kinds.push({
            name: 'exact (usearch brute force)',
            make: () => ({
              index: new BruteForceIndex(stored, d, threads, refine),
              // f16 is searched decoded to f32 (usearch's exact search takes no f16)
              bytes: stored.data.length * (p === 'f16' ? 4 : p === 'i8' ? 1 : 4),
              buildS: 0,
            }),
          });
        if (libs.includes('usearch'))
          for (const ef of efs)
            kinds.push({
              name: `HNSW ef=${ef}`,
              make: () => {
                const settings: HnswSettings = { connectivity, expansionAdd: efAdd, expansionSearch: ef };
                const key = `${p} ${ef}`;
                let g = graphs.get(key);
                if (!g) {
                  const t0 = performance.now();
                  const built = HnswIndex.build(stored, d, settings, threads);
                  const buildS = (performance.now() - t0) / 1000;
                  const file = join(tmp, `gallery-precision-bench-${process.pid}-${p}-${ef}.hnsw`);
                  built.save(file);
                  g = { file, buildS };
                  graphs.set(key, g);
                }
                const n0 = stored.data.length / d;
                const index = HnswIndex.load(
                  g.file,
                  d,
                  n0,
                  settings,
                  threads,
                  p === 'f32' ? undefined : stored,
                  refine,
                );
                return { index, bytes: statSync(g.file).size, buildS: g.buildS };
              },
            });
        for (const k of kinds) {
          const { index, bytes, buildS } = k.make();
          const res = index.searchRows(queries, 5);
          let hit = 0;
          let tie = 0;
          let sameP = 0;
          for (let q = 0; q < nq; q++) {
            const row = res.indices[q * res.k]!;
            const best = truth.indices[q]!;
            if (row === best) hit++;
            if (row >= 0 && f32Sim(q, row) >= f32Sim(q, best) - 1e-4) tie++;
            if (row >= 0 && same(q, row)) sameP++;
          }
          const time = (r: number): number => {
            index.searchRows(queries.subarray(0, r * d), 5);
            const ts: number[] = [];
            for (let i = 0; i < 30; i++) {
              const o = ((i * 37) % Math.max(1, nq - r)) * d;
              const t0 = performance.now();
              index.searchRows(queries.subarray(o, o + r * d), 5);
              ts.push(performance.now() - t0);
            }
            return median(ts);
          };
          console.log(
            `| ${label} | ${n} | ${d} | ${name} | ${k.name} | ${(hit / nq).toFixed(3)} | ${(tie / nq).toFixed(3)} | ` +
              `${(sameP / nq).toFixed(3)} | ${mb(stored.data.byteLength)} | ${mb(bytes)} | ${mb(fileBytes)} | ` +
              `${buildS.toFixed(1)} | ${time(1).toFixed(3)} | ${time(32).toFixed(2)} |`,
          );
          index.dispose();
        }
      }
      for (const g of graphs.values()) rmSync(g.file, { force: true });
      for (const { p } of ps) rmSync(join(tmp, `gallery-precision-bench-${process.pid}-${p}.gallery`), { force: true });
    }
  }
}
