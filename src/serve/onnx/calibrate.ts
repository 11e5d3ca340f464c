// Activation ranges for int8 export, measured by running the float graph
// (BatchNorm already folded) in onnxruntime on calibration photos with every
// tensor to quantize fetched as an extra output.
//
// Methods: 'minmax' (the extremes seen), 'percentile' (the central
// `percentile` % of the values seen) and 'mse' (the range whose uint8 grid
// gives the least squared error over the values seen: rounding inside, clipping
// outside), the last two from a 2048-bin histogram over the min-max range.
// Not min-max alone: a handful of extreme activations would set a coarse uint8
// step for every value of a tensor.
import ort from 'onnxruntime-node';
import type { CalibrationBatch, CalibrationMethod, Range } from './quantize.js';

const BINS = 2048;

/** One tensor's values over the calibration photos: extremes, then a histogram over them. */
export class TensorStats {
  min = Infinity;
  max = -Infinity;
  hist: Float64Array | null = null;
  count = 0;
  /** Values exactly 0 (ReLU outputs, padding): exact on every grid, so they cost 'mse' nothing. */
  zeros = 0;

  addRange(d: Float32Array): void {
    let lo = this.min;
    let hi = this.max;
    for (let i = 0; i < d.length; i++) {
      const v = d[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    this.min = lo;
    this.max = hi;
  }

  addHistogram(d: Float32Array): void {
    const h = (this.hist ??= new Float64Array(BINS));
    const w = this.max - this.min;
    if (!(w > 0)) return;
    const k = BINS / w;
    let zeros = 0;
    for (let i = 0; i < d.length; i++) {
      const v = d[i]!;
      if (v === 0) zeros++;
      h[Math.min(BINS - 1, Math.floor((v - this.min) * k))]! += 1;
    }
    this.count += d.length;
    this.zeros += zeros;
  }

  /** min-max, or the values between the lower (100 - p) % and the upper p % quantiles (to whole bins). */
  range(method: CalibrationMethod, percentile: number): Range {
    if (method === 'minmax' || !this.hist || this.count === 0 || !(this.max > this.min))
      return { min: this.min, max: this.max };
    if (method === 'mse') return this.mseRange();
    const tail = this.count * (1 - percentile / 100);
    const w = (this.max - this.min) / BINS;
    let acc = 0;
    let lo = 0;
    while (lo < BINS - 1 && acc + this.hist[lo]! <= tail) acc += this.hist[lo++]!;
    acc = 0;
    let hi = BINS - 1;
    while (hi > 0 && acc + this.hist[hi]! <= tail) acc += this.hist[hi--]!;
    return { min: this.min + lo * w, max: this.min + (hi + 1) * w };
  }

  /**
   * The range [lo, hi] (ends on bin edges, lo <= 0 <= hi as the uint8 grid always holds 0) with the least
   * expected squared error: step^2 / 12 for each non-zero value inside (step = (hi - lo) / 255), the squared
   * distance to the nearer end for each value outside; a bin's values taken at its centre. Every pair of
   * ends is tried, each in O(1) from prefix sums.
   */
  mseRange(): Range {
    const h = this.hist!;
    const w = (this.max - this.min) / BINS;
    const n = new Float64Array(BINS + 1);
    const s1 = new Float64Array(BINS + 1);
    const s2 = new Float64Array(BINS + 1);
    const zeroBin = this.min <= 0 && this.max >= 0 ? Math.min(BINS - 1, Math.floor(-this.min / w)) : -1;
    for (let j = 0; j < BINS; j++) {
      const c = h[j]! - (j === zeroBin ? this.zeros : 0);
      const x = this.min + (j + 0.5) * w;
      n[j + 1] = n[j]! + c;
      s1[j + 1] = s1[j]! + c * x;
      s2[j + 1] = s2[j]! + c * x * x;
    }
    const edge = (k: number): number => this.min + k * w;
    // Edges that may end the range: lo at or below 0, hi at or above it (the grid's ends are min(lo, 0), max(hi, 0)).
    const loLast = this.min >= 0 ? 0 : Math.min(BINS, Math.floor(-this.min / w));
    const hiFirst = this.max <= 0 ? BINS : Math.max(0, Math.ceil(-this.min / w));
    // Squared distance of the values of bins [a, b) to x.
    const dist2 = (a: number, b: number, x: number): number =>
      s2[b]! - s2[a]! - 2 * x * (s1[b]! - s1[a]!) + x * x * (n[b]! - n[a]!);
    let best = Infinity;
    let bestA = 0;
    let bestB = BINS;
    for (let a = 0; a <= loLast; a++) {
      const lo = Math.min(edge(a), 0);
      const below = dist2(0, a, lo);
      for (let b = Math.max(hiFirst, a + 1); b <= BINS; b++) {
        const hi = Math.max(edge(b), 0);
        const step = (hi - lo) / 255;
        const e = below + ((n[b]! - n[a]!) * step * step) / 12 + dist2(b, BINS, hi);
        if (e < best) {
          best = e;
          bestA = a;
          bestB = b;
        }
      }
    }
    return { min: edge(bestA), max: edge(bestB) };
  }
}

export interface CalibrateOptions {
  /** The float graph with `tensors` reachable (serialised by GraphBuilder.encode with them as outputs). */
  graph: Uint8Array;
  inputName: string;
  inputDims: readonly number[];
  /** Tensors to measure; the graph input among them is measured from the batches themselves. */
  tensors: readonly string[];
  batches: readonly CalibrationBatch[];
  method: CalibrationMethod;
  /** Percentile kept by 'percentile' (default 99.99). */
  percentile?: number;
  threads?: number;
}

/** Calibrated range of every tensor in o.tensors. */
export async function calibrateRanges(o: CalibrateOptions): Promise<Map<string, Range>> {
  if (!o.batches.length) throw new Error('int8 export: no calibration photos');
  const percentile = o.percentile ?? 99.99;
  const fetched = o.tensors.filter((t) => t !== o.inputName);
  const stats = new Map(o.tensors.map((t) => [t, new TensorStats()]));
  const session = await ort.InferenceSession.create(o.graph, {
    graphOptimizationLevel: 'basic',
    ...(o.threads ? { intraOpNumThreads: o.threads } : {}),
  });
  try {
    const pass = async (add: (s: TensorStats, d: Float32Array) => void): Promise<void> => {
      for (const b of o.batches) {
        const feeds = { [o.inputName]: new ort.Tensor('float32', b.data, [b.n, ...o.inputDims]) };
        const r = fetched.length ? await session.run(feeds, fetched) : {};
        for (const t of o.tensors) {
          const d = t === o.inputName ? b.data : (r[t]?.data as Float32Array | undefined);
          if (!d) throw new Error(`int8 export: onnxruntime returned no value for tensor '${t}'`);
          add(stats.get(t)!, d);
        }
      }
    };
    await pass((s, d) => s.addRange(d));
    if (o.method !== 'minmax') await pass((s, d) => s.addHistogram(d));
  } finally {
    await session.release();
  }
  return new Map([...stats].map(([t, s]) => [t, s.range(o.method, percentile)]));
}
