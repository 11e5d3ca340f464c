// Activation ranges for int8 export, measured by running the float graph
// (BatchNorm already folded) in onnxruntime on calibration photos with every
// tensor to quantize fetched as an extra output.
//
// Methods: 'minmax' (the extremes seen) and 'percentile' (the central
// `percentile` % of the values seen, from a 2048-bin histogram over the
// min-max range). Percentile is the default: a handful of extreme activations
// would otherwise set a coarse uint8 step for every value of a tensor.
import ort from 'onnxruntime-node';
import type { CalibrationBatch, CalibrationMethod, Range } from './quantize.js';

const BINS = 2048;

class TensorStats {
  min = Infinity;
  max = -Infinity;
  hist: Float64Array | null = null;
  count = 0;

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
    for (let i = 0; i < d.length; i++) h[Math.min(BINS - 1, Math.floor((d[i]! - this.min) * k))]! += 1;
    this.count += d.length;
  }

  /** min-max, or the values between the lower (100 - p) % and the upper p % quantiles (to whole bins). */
  range(method: CalibrationMethod, percentile: number): Range {
    if (method === 'minmax' || !this.hist || this.count === 0 || !(this.max > this.min))
      return { min: this.min, max: this.max };
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
    if (o.method === 'percentile') await pass((s, d) => s.addHistogram(d));
  } finally {
    await session.release();
  }
  return new Map([...stats].map(([t, s]) => [t, s.range(o.method, percentile)]));
}
