// Gallery search latency: exact cosine k-NN on libtorch (chunked matmul + topk,
// src/gallery/search.ts) over N random unit vectors of width D, for one query
// and for a batch of 32, median of repeated runs on the configured threads.
// GOODSREC_BENCH_SIZES=10000,100000,1000000 GOODSREC_BENCH_DIM=512 GOODSREC_BENCH_THREADS=2
import * as T from '../src/tensor/index.js';
import { ExactIndex } from '../src/gallery/search.js';

const sizes = (process.env.GOODSREC_BENCH_SIZES ?? '10000,100000').split(',').map(Number);
const dim = Number(process.env.GOODSREC_BENCH_DIM ?? 512);
T.setNumThreads(Number(process.env.GOODSREC_BENCH_THREADS ?? 2));

function unit(n: number, seed: number): Float32Array {
  T.manualSeed(seed);
  return T.tidy(() => { const x = T.randn([n, dim]); return x.div(x.norm(2, 1, true)).data<'float32'>().slice(); });
}

function median(xs: number[]): number { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; }

console.log(`exact search, D=${dim}, k=5, ${T.getNumThreads()} threads`);
console.log('| vectors | 1 query (ms) | 32 queries (ms per batch) | per query in batch (ms) |');
console.log('|---|---|---|---|');
for (const n of sizes) {
  const index = new ExactIndex(unit(n, 1), dim);
  const q = unit(32, 2);
  const time = (rows: number, reps: number): number => {
    const qt = T.keep(T.tensor(q.subarray(0, rows * dim), [rows, dim]));
    index.search(qt, 5);
    const ts: number[] = [];
    for (let i = 0; i < reps; i++) { const t0 = performance.now(); index.search(qt, 5); ts.push(performance.now() - t0); }
    qt.dispose();
    return median(ts);
  };
  const reps = n >= 1_000_000 ? 5 : 20;
  const one = time(1, reps); const batch = time(32, reps);
  console.log(`| ${n} | ${one.toFixed(2)} | ${batch.toFixed(2)} | ${(batch / 32).toFixed(3)} |`);
  index.dispose();
}
