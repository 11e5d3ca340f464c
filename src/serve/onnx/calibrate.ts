// Activation ranges for int8 export, measured by running the float graph
// (BatchNorm already folded) in onnxruntime on calibration photos with every
// tensor to quantize fetched as an extra output.
//
// Methods: 'minmax' (the extremes seen), 'percentile' (the central
// `percentile` % of the values seen) and 'mse' (the range whose uint8 grid
// gives the least squared error over the values seen: rounding inside, clipping
// outside), the last two from a 2048-bin histogram over the min-max range,
// and 'entropy' (TensorRT's: the |x| threshold whose 128-level quantization
// loses the least information) from a histogram of |x|.
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
  /** 'entropy': histogram of |x| over [0, max |x|]. */
  absHist: Float64Array | null = null;

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
    const k = this.binsPerUnit();
    const a = (this.absHist ??= new Float64Array(BINS));
    const ka = BINS / Math.max(-this.min, this.max);
    let zeros = 0;
    for (let i = 0; i < d.length; i++) {
      const v = d[i]!;
      if (v === 0) zeros++;
      h[Math.min(BINS - 1, Math.floor((v - this.min) * k))]! += 1;
      a[Math.min(BINS - 1, Math.floor(Math.abs(v) * ka))]! += 1;
    }
    this.count += d.length;
    this.zeros += zeros;
  }

  /** Histogram bins per unit of value: bin of v = min(BINS - 1, floor((v - min) * binsPerUnit)). */
  private binsPerUnit(): number {
    return BINS / (this.max - this.min);
  }

  /** min-max, or the values between the lower (100 - p) % and the upper p % quantiles (to whole bins). */
  range(method: CalibrationMethod, percentile: number): Range {
    if (method === 'minmax' || !this.hist || this.count === 0 || !(this.max > this.min))
      return { min: this.min, max: this.max };
    if (method === 'mse') return this.mseRange();
    if (method === 'entropy') return this.entropyRange();
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
    // The bin addHistogram put the exact zeros in (the same formula, so never a neighbour).
    const zeroBin =
      this.min <= 0 && this.max >= 0 ? Math.min(BINS - 1, Math.floor((0 - this.min) * this.binsPerUnit())) : -1;
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

  /**
   * TensorRT's entropy calibration (as MXNet and onnxruntime implement it): the threshold T on |x| whose
   * 128-level quantization of the histogram's first bins (the values beyond T folded into the last kept bin)
   * loses the least information, KL(P || Q); the range is [-T, T] cut to the values seen.
   */
  entropyRange(): Range {
    // Exact zeros (ReLU outputs) are exact on every grid; left in, their spike in the first bin would make
    // any merging of that bin look costly and drive the threshold towards 0.
    const h = this.absHist!.slice();
    h[0] = Math.max(0, h[0]! - this.zeros);
    const top = Math.max(-this.min, this.max);
    const LEVELS = 128;
    const beyond = new Float64Array(BINS + 1); // beyond[i] = values in bins i..end
    for (let j = BINS - 1; j >= 0; j--) beyond[j] = beyond[j + 1]! + h[j]!;
    const p = new Float64Array(BINS);
    const q = new Float64Array(BINS);
    let best = Infinity;
    let bestI = BINS;
    for (let i = LEVELS; i <= BINS; i++) {
      for (let j = 0; j < i; j++) p[j] = h[j]!;
      p[i - 1]! += beyond[i]!;
      // Q: the first i bins (without the folded values) merged into LEVELS groups, each group's count spread
      // evenly over the bins that P has non-empty.
      for (let g = 0; g < LEVELS; g++) {
        const a = Math.floor((g * i) / LEVELS);
        const b = g === LEVELS - 1 ? i : Math.floor(((g + 1) * i) / LEVELS);
        let sum = 0;
        let nz = 0;
        for (let j = a; j < b; j++) {
          sum += h[j]!;
          if (p[j]! > 0) nz++;
        }
        for (let j = a; j < b; j++) q[j] = p[j]! > 0 ? sum / nz : 0;
      }
      let ps = 0;
      let qs = 0;
      for (let j = 0; j < i; j++) {
        ps += p[j]!;
        qs += q[j]!;
      }
      let kl = 0;
      for (let j = 0; j < i; j++) {
        const pj = p[j]! / ps;
        if (pj > 0) kl += pj * Math.log(pj / Math.max(q[j]! / qs, 1e-12));
      }
      if (kl < best) {
        best = kl;
        bestI = i;
      }
    }
    const t = (bestI / BINS) * top;
    return { min: Math.max(this.min, -t), max: Math.min(this.max, t) };
  }
}

export interface CalibrateOptions {
  /** The float graph with `tensors` (and `reference`) reachable (serialised with them as outputs). */
  graph: Uint8Array;
  inputName: string;
  inputDims: readonly number[];
  /** Tensors to measure; the graph input among them is measured from the batches themselves. */
  tensors: readonly string[];
  batches: readonly CalibrationBatch[];
  /** The methods whose ranges will be asked for (min-max alone needs no histogram pass). */
  methods: readonly CalibrationMethod[];
  /** Percentile kept by 'percentile' (default 99.99). */
  percentile?: number;
  /** An output whose float values on each batch are kept (what int8 graphs are compared with). */
  reference?: string;
  threads?: number;
}

/** What calibration measured: every tensor's statistics, and the float reference output per run. */
export interface Calibration {
  /** Calibrated range of every tensor, by a method. */
  ranges(method: CalibrationMethod): Map<string, Range>;
  /** The photos as they were run: at most PHOTOS_PER_RUN at a time. */
  runs: CalibrationBatch[];
  /** `reference`'s values, one array per run (empty when none was asked for). */
  reference: Float32Array[];
}

// Calibration fetches every quantized tensor of a batch at once: at most this many photos per run keeps that
// (and onnxruntime's arena) small, e.g. EfficientNet-B0 at 128 px needed 2.4 GB in batches of 32.
const PHOTOS_PER_RUN = 8;

/** The batches cut into runs of at most PHOTOS_PER_RUN photos. */
function runsOf(batches: readonly CalibrationBatch[], inputDims: readonly number[]): CalibrationBatch[] {
  const per = inputDims.reduce((a, b) => a * b, 1);
  return batches.flatMap((b) => {
    const out: CalibrationBatch[] = [];
    for (let i = 0; i < b.n; i += PHOTOS_PER_RUN) {
      const n = Math.min(PHOTOS_PER_RUN, b.n - i);
      out.push({ data: b.n <= PHOTOS_PER_RUN ? b.data : b.data.slice(i * per, (i + n) * per), n });
    }
    return out;
  });
}

/** Runs the float graph over the batches (two passes: extremes, then histograms) and keeps the statistics. */
export async function calibrate(o: CalibrateOptions): Promise<Calibration> {
  if (!o.batches.length) throw new Error('int8 export: no calibration photos');
  const runs = runsOf(o.batches, o.inputDims);
  const percentile = o.percentile ?? 99.99;
  const fetched = o.tensors.filter((t) => t !== o.inputName);
  const stats = new Map(o.tensors.map((t) => [t, new TensorStats()]));
  const reference: Float32Array[] = [];
  const session = await ort.InferenceSession.create(o.graph, {
    graphOptimizationLevel: 'basic',
    ...(o.threads ? { intraOpNumThreads: o.threads } : {}),
  });
  try {
    const pass = async (add: (s: TensorStats, d: Float32Array) => void, keep: boolean): Promise<void> => {
      for (const b of runs) {
        const feeds = { [o.inputName]: new ort.Tensor('float32', b.data, [b.n, ...o.inputDims]) };
        const names = keep && o.reference ? [...fetched, o.reference] : fetched;
        const r = names.length ? await session.run(feeds, names) : {};
        for (const t of o.tensors) {
          const d = t === o.inputName ? b.data : (r[t]?.data as Float32Array | undefined);
          if (!d) throw new Error(`int8 export: onnxruntime returned no value for tensor '${t}'`);
          add(stats.get(t)!, d);
        }
        if (keep && o.reference) reference.push((r[o.reference]!.data as Float32Array).slice());
      }
    };
    await pass((s, d) => s.addRange(d), true);
    if (o.methods.some((m) => m !== 'minmax')) await pass((s, d) => s.addHistogram(d), false);
  } finally {
    await session.release();
  }
  return {
    ranges: (method) => new Map([...stats].map(([t, s]) => [t, s.range(method, percentile)])),
    runs,
    reference,
  };
}

/**
 * How far an int8 graph's answers are from the float graph's on the calibration photos (`calibration`
 * with its `reference` kept): the mean over photos of KL(softmax(float logits) || softmax(int8 logits)),
 * in float64, the int8 graph run by onnxruntime as the server runs it (integer convolutions fused).
 */
export async function int8Divergence(o: {
  graph: Uint8Array;
  inputName: string;
  inputDims: readonly number[];
  output: string;
  calibration: Calibration;
  threads?: number;
}): Promise<number> {
  const { runs, reference } = o.calibration;
  if (reference.length !== runs.length) throw new Error('int8Divergence: the calibration kept no reference output');
  const session = await ort.InferenceSession.create(o.graph, {
    graphOptimizationLevel: 'all',
    ...(o.threads ? { intraOpNumThreads: o.threads } : {}),
  });
  try {
    let sum = 0;
    let photos = 0;
    for (const [k, b] of runs.entries()) {
      const feeds = { [o.inputName]: new ort.Tensor('float32', b.data, [b.n, ...o.inputDims]) };
      const q = (await session.run(feeds, [o.output]))[o.output]!.data as Float32Array;
      const p = reference[k]!;
      const c = p.length / b.n;
      for (let i = 0; i < b.n; i++) {
        sum += klOfLogits(p.subarray(i * c, (i + 1) * c), q.subarray(i * c, (i + 1) * c));
        photos++;
      }
    }
    return sum / photos;
  } finally {
    await session.release();
  }
}

/** KL(softmax(p) || softmax(q)) in float64. */
export function klOfLogits(p: Float32Array, q: Float32Array): number {
  let mp = -Infinity;
  let mq = -Infinity;
  for (let j = 0; j < p.length; j++) {
    mp = Math.max(mp, p[j]!);
    mq = Math.max(mq, q[j]!);
  }
  let zp = 0;
  let zq = 0;
  for (let j = 0; j < p.length; j++) {
    zp += Math.exp(p[j]! - mp);
    zq += Math.exp(q[j]! - mq);
  }
  const lzp = Math.log(zp) + mp;
  const lzq = Math.log(zq) + mq;
  let kl = 0;
  for (let j = 0; j < p.length; j++) {
    const lp = p[j]! - lzp;
    kl += Math.exp(lp) * (lp - (q[j]! - lzq));
  }
  return Math.max(0, kl);
}
