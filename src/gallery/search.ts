// Exact cosine search on libtorch: the gallery's unit rows live in one tensor;
// a query batch is multiplied against chunks of it (bounded memory: Q x chunk
// scores at a time) and each chunk's top-k is merged into the running top-k.
import * as T from '../tensor/index.js';
import type { NeighbourIndex, SearchResult } from './neighbour-index.js';

export type { SearchResult } from './neighbour-index.js';

export class ExactIndex implements NeighbourIndex {
  readonly kind = 'exact';
  private readonly rows: T.Tensor;

  /** embeddings: row-major [n, dim] unit rows (copied into a tensor). */
  constructor(
    embeddings: Float32Array,
    readonly dim: number,
    readonly device: T.Device = 'cpu',
    readonly chunkRows = 65536,
  ) {
    const n = embeddings.length / dim;
    if (!Number.isInteger(n)) throw new RangeError(`ExactIndex: ${embeddings.length} floats are not rows of ${dim}`);
    this.rows = T.keep(
      T.tidy(() => {
        const t = T.tensor(embeddings, [n, dim]);
        return device === 'cpu' ? t : t.to(device);
      }),
    );
  }

  get size(): number {
    return this.rows.shape[0]!;
  }

  searchRows(queries: Float32Array, k: number): SearchResult {
    return T.tidy(() => this.search(T.tensor(queries, [queries.length / this.dim, this.dim]), k));
  }

  /** The k most similar rows for each query row (queries: [q, dim], unit rows). */
  search(queries: T.Tensor, k: number): SearchResult {
    const n = this.size;
    const kk = Math.min(k, n);
    const q = queries.shape[0]!;
    if (kk === 0 || q === 0) return { scores: new Float32Array(0), indices: new Int32Array(0), k: 0 };
    return T.tidy(() =>
      T.noGrad(() => {
        const qs = (this.device === 'cpu' ? queries : queries.to(this.device)).float();
        let best: T.Tensor | null = null;
        let bestIdx: T.Tensor | null = null;
        for (let start = 0; start < n; start += this.chunkRows) {
          const len = Math.min(this.chunkRows, n - start);
          const sims = qs.matmul(this.rows.narrow(0, start, len).t());
          const { values, indices } = sims.topk(Math.min(kk, len), 1);
          const idx = start ? indices.add(start) : indices;
          if (!best) {
            best = values;
            bestIdx = idx;
            continue;
          }
          const merged = T.F.cat([best, values], 1).topk(kk, 1);
          bestIdx = T.F.cat([bestIdx!, idx], 1).gather(1, merged.indices);
          best = merged.values;
        }
        return {
          scores: best!.cpu().data<'float32'>().slice(),
          indices: Int32Array.from(bestIdx!.cpu().data<'int64'>(), Number),
          k: kk,
        };
      }),
    );
  }

  dispose(): void {
    this.rows.dispose();
  }
}
