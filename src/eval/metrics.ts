// Classification metrics from per-sample scores: every sample counts exactly
// once (the original code dropped the last partial batch).
import type {
  ClassifierMetrics,
  ClassifierPrediction,
  ClassMetricsRecord,
  FrequencyGroupRecord,
} from '../run/eval-file.js';

/** One class's numbers (as the eval file stores them). */
export type ClassMetrics = ClassMetricsRecord;
/** An evaluation's numbers (as the eval file stores them under `metrics`). */
export type EvalMetrics = ClassifierMetrics;

/** Accumulates predictions batch by batch. */
export class MetricsAccumulator {
  private readonly numClasses: number;
  private readonly confusion: number[][];
  private seen = 0;
  private top1 = 0;
  private top5 = 0;
  private lossSum = 0;
  private lossCount = 0;
  private readonly seenIndices = new Set<number>();

  constructor(private readonly classNames: readonly string[]) {
    this.numClasses = classNames.length;
    this.confusion = classNames.map(() => new Array<number>(this.numClasses).fill(0));
  }

  /**
   * Adds a batch: scores [n * numClasses] row-major, labels [n], and the
   * dataset indices of the samples, which must not repeat.
   */
  add(scores: Float32Array, labels: ArrayLike<number>, indices?: ArrayLike<number>): void {
    const n = labels.length;
    const c = this.numClasses;
    if (scores.length !== n * c)
      throw new RangeError(`MetricsAccumulator: ${scores.length} scores for ${n} samples x ${c} classes`);
    for (let i = 0; i < n; i++) {
      if (indices) {
        const idx = indices[i]!;
        if (this.seenIndices.has(idx)) throw new Error(`MetricsAccumulator: sample ${idx} was counted twice`);
        this.seenIndices.add(idx);
      }
      const y = labels[i]!;
      if (!(y >= 0 && y < c)) throw new RangeError(`MetricsAccumulator: label ${y} out of range [0, ${c})`);
      const row = scores.subarray(i * c, (i + 1) * c);
      const top = topk(row, Math.min(5, c));
      this.confusion[y]![top[0]!]!++;
      if (top[0] === y) this.top1++;
      if (top.includes(y)) this.top5++;
      this.seen++;
    }
  }

  addLoss(sum: number, count: number): void {
    this.lossSum += sum;
    this.lossCount += count;
  }

  get count(): number {
    return this.seen;
  }

  /** Every count as one vector (seen, top-1, top-5, loss sum, loss count, confusion row-major): sums merge shards. */
  counts(): Float64Array {
    const c = this.numClasses;
    const out = new Float64Array(5 + c * c);
    out.set([this.seen, this.top1, this.top5, this.lossSum, this.lossCount]);
    this.confusion.forEach((row, k) => out.set(row, 5 + k * c));
    return out;
  }

  /** Replaces the counts with `v` (as counts() lays them out), e.g. their sum over data-parallel shards. */
  setCounts(v: Float64Array): void {
    const c = this.numClasses;
    if (v.length !== 5 + c * c) throw new RangeError(`MetricsAccumulator: ${v.length} counts for ${c} classes`);
    [this.seen, this.top1, this.top5, this.lossSum, this.lossCount] = [v[0]!, v[1]!, v[2]!, v[3]!, v[4]!];
    this.confusion.forEach((row, k) => {
      for (let j = 0; j < c; j++) row[j] = v[5 + k * c + j]!;
    });
  }

  result(): EvalMetrics {
    const perClass: ClassMetrics[] = this.classNames.map((name, k) => {
      const row = this.confusion[k]!;
      const support = row.reduce((a, b) => a + b, 0);
      const correct = row[k]!;
      const predicted = this.confusion.reduce((a, r) => a + r[k]!, 0);
      const recall = support ? correct / support : 0;
      const precision = predicted ? correct / predicted : 0;
      const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
      return { name, support, correct, accuracy: recall, precision, recall, f1 };
    });
    const withSupport = perClass.filter((p) => p.support > 0);
    return {
      samples: this.seen,
      top1: this.seen ? this.top1 / this.seen : 0,
      top5: this.seen ? this.top5 / this.seen : 0,
      meanClassAccuracy: withSupport.length ? withSupport.reduce((a, p) => a + p.accuracy, 0) / withSupport.length : 0,
      loss: this.lossCount ? this.lossSum / this.lossCount : null,
      perClass,
      confusion: this.confusion.map((r) => [...r]),
    };
  }
}

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topk(row: ArrayLike<number>, k: number): number[] {
  const idx: number[] = [];
  for (let j = 0; j < row.length; j++) {
    let pos = idx.length;
    while (pos > 0 && row[idx[pos - 1]!]! < row[j]!) pos--;
    if (pos < k) {
      idx.splice(pos, 0, j);
      if (idx.length > k) idx.pop();
    }
  }
  return idx;
}

/** One photo's answer as eval files keep it: its k best classes by `row` and their probabilities `p` (softmax of row). */
export function topKPrediction(
  row: ArrayLike<number>,
  p: ArrayLike<number>,
  k: number,
  sample: { index: number; path: string; label: number },
): ClassifierPrediction {
  const top = topk(row, k);
  return { ...sample, top, probs: top.map((j) => p[j]!) };
}

/** Softmax of one row of logits (numerically stable). */
export function softmaxRow(row: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let j = 0; j < row.length; j++) m = Math.max(m, row[j]!);
  const out = new Float64Array(row.length);
  let s = 0;
  for (let j = 0; j < row.length; j++) {
    out[j] = Math.exp(row[j]! - m);
    s += out[j]!;
  }
  for (let j = 0; j < row.length; j++) out[j] = out[j]! / s;
  return out;
}

/** Human-readable summary of an evaluation. */
export function formatMetrics(m: EvalMetrics, worst = 5): string {
  const pct = (v: number): string => (100 * v).toFixed(2) + '%';
  const lines = [
    `samples        ${m.samples}`,
    `top-1          ${pct(m.top1)}`,
    `top-5          ${pct(m.top5)}`,
    `mean class acc ${pct(m.meanClassAccuracy)}`,
  ];
  if (m.loss !== null) lines.push(`loss           ${m.loss.toFixed(4)}`);
  const f = m.byFrequency;
  if (f) {
    const g = (name: string, r: FrequencyGroupRecord): string =>
      `${name} ${r.top1 === null ? '-' : pct(r.top1)} (${r.classes} classes, ${r.samples} photos)`;
    lines.push(
      `by training photos: ${g('many (>100)', f.many)}; ${g('medium (20-100)', f.medium)}; ${g('few (<20)', f.few)}`,
    );
  }
  const sorted = m.perClass
    .filter((p) => p.support > 0)
    .sort((a, b) => a.accuracy - b.accuracy)
    .slice(0, worst);
  if (sorted.length) {
    lines.push(`weakest classes:`);
    for (const p of sorted) lines.push(`  ${pct(p.accuracy).padStart(7)}  ${p.correct}/${p.support}  ${p.name}`);
  }
  return lines.join('\n');
}
