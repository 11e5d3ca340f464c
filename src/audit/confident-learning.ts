// Confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset
// Labels", JAIR 2021) on out-of-sample class probabilities, as cleanlab's find_label_issues with
// filter_by='prune_by_noise_rate': per-class thresholds, the confident joint of (given, likely true) label,
// calibrated to the class counts, and for each off-diagonal cell that many photos of the given class with
// the largest margin p(other) - p(given) flagged. The probabilities must be out-of-sample (a photo's own
// label did not shape its own row), or memorised labels look right.

export interface ConfidentLearningResult {
  /** Per class: the mean probability of that class over the photos given it (t_j); Infinity for a class no photo is given. */
  thresholds: Float64Array;
  /** confidentJoint[given][likely true]: photos counted in each cell. */
  confidentJoint: number[][];
  /** The confident joint with each row scaled to its class's photo count (and the whole to n). */
  calibratedJoint: number[][];
  /** Photos flagged as likely wrong labels. */
  flagged: boolean[];
  /** Per photo: the probability of its given label (self-confidence; low = suspect). */
  quality: Float64Array;
  /** Per photo: the most probable class other than the given one, and its probability. */
  suggested: Int32Array;
  suggestedProbability: Float64Array;
  /** Off-diagonal mass of the calibrated joint: the estimated number of wrong labels. */
  estimatedErrors: number;
}

/** cleanlab's tolerance below a threshold that still counts as reaching it. */
const TOLERANCE = 1e-6;

/**
 * Label issues from probabilities [n * classes] (rows need not sum exactly to 1) and given labels.
 * At least one photo of each given class is always kept (cleanlab's min_examples_per_class = 1), and a
 * photo whose most probable class is its given one is never flagged.
 */
export function confidentLearning(
  probs: ArrayLike<number>,
  labels: ArrayLike<number>,
  classes: number,
): ConfidentLearningResult {
  const n = labels.length;
  if (probs.length !== n * classes)
    throw new RangeError(`confidentLearning: ${probs.length} probabilities for ${n} photos x ${classes} classes`);
  const p = (i: number, j: number): number => probs[i * classes + j]!;
  const count = new Array<number>(classes).fill(0);
  const sum = new Float64Array(classes);
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    if (!(Number.isInteger(y) && y >= 0 && y < classes))
      throw new RangeError(`confidentLearning: label ${y} of photo ${i}`);
    count[y]!++;
    sum[y]! += p(i, y);
  }
  const thresholds = Float64Array.from(sum, (s, j) => (count[j]! ? s / count[j]! : Infinity));

  const joint = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  const argmax = new Int32Array(n);
  const quality = new Float64Array(n);
  const suggested = new Int32Array(n);
  const suggestedProbability = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    let confident = -1;
    let best = 0;
    let other = -1;
    for (let j = 0; j < classes; j++) {
      const v = p(i, j);
      if (v > p(i, best)) best = j;
      if (v >= thresholds[j]! - TOLERANCE && (confident < 0 || v > p(i, confident))) confident = j;
      if (j !== y && (other < 0 || v > p(i, other))) other = j;
    }
    argmax[i] = best;
    quality[i] = p(i, y);
    suggested[i] = other;
    suggestedProbability[i] = other < 0 ? 0 : p(i, other);
    if (confident >= 0) joint[y]![confident]!++;
  }

  // Calibration: row y scaled to count[y] photos, then the whole to n (an empty row stays empty).
  const scaled = joint.map((row, y) => {
    const total = row.reduce((a, b) => a + b, 0);
    return row.map((c) => (total ? (c / total) * count[y]! : 0));
  });
  const mass = scaled.flat().reduce((a, b) => a + b, 0);
  const calibrated = scaled.map((row) => row.map((c) => (mass ? (c / mass) * n : 0)));

  const flagged = new Array<boolean>(n).fill(false);
  const byClass = Array.from({ length: classes }, () => [] as number[]);
  for (let i = 0; i < n; i++) byClass[labels[i]!]!.push(i);
  for (let y = 0; y < classes; y++) {
    const members = byClass[y]!;
    if (!members.length) continue;
    const prune = calibrated[y]!.map((c, j) => (j === y ? 0 : Math.round(c)));
    // Keep at least one photo of the class: scale the cells down when they would remove them all.
    const total = prune.reduce((a, b) => a + b, 0);
    const room = members.length - 1;
    if (total > room) for (let j = 0; j < classes; j++) prune[j] = Math.floor((prune[j]! * room) / total);
    for (let j = 0; j < classes; j++) {
      if (!prune[j]) continue;
      // The prune[j] photos of class y with the largest margin p(j) - p(y); ties by position.
      const order = [...members].sort((a, b) => p(b, j) - p(b, y) - (p(a, j) - p(a, y)) || a - b);
      for (const i of order.slice(0, prune[j])) flagged[i] = true;
    }
  }
  for (let i = 0; i < n; i++) if (argmax[i] === labels[i]) flagged[i] = false;
  let estimatedErrors = 0;
  calibrated.forEach((row, y) => row.forEach((c, j) => (estimatedErrors += j === y ? 0 : c)));
  return {
    thresholds,
    confidentJoint: joint,
    calibratedJoint: calibrated,
    flagged,
    quality,
    suggested,
    suggestedProbability,
    estimatedErrors,
  };
}

/** Photo indices from most to least suspect: lowest self-confidence first, then the more probable alternative. */
export function rankBySuspicion(r: Pick<ConfidentLearningResult, 'quality' | 'suggestedProbability'>): number[] {
  return Array.from(r.quality, (_, i) => i).sort(
    (a, b) => r.quality[a]! - r.quality[b]! || r.suggestedProbability[b]! - r.suggestedProbability[a]! || a - b,
  );
}
