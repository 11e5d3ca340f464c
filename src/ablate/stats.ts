// Summary statistics of an ablation: mean and sample sd per cell, and the difference of two cells' means
// with Welch's t interval (unequal variances, Welch-Satterthwaite degrees of freedom).

export interface Moments {
  n: number;
  mean: number;
  /** Sample standard deviation (n - 1); NaN for one value. */
  sd: number;
  min: number;
  max: number;
}

export function moments(xs: readonly number[]): Moments {
  const n = xs.length;
  if (n === 0) return { n, mean: Number.NaN, sd: Number.NaN, min: Number.NaN, max: Number.NaN };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : Number.NaN;
  return { n, mean, sd, min: Math.min(...xs), max: Math.max(...xs) };
}

/**
 * ln Gamma(x) for x > 0: shifted up to x >= 15 by the recurrence, then Stirling's series to the x^-9 term
 * (below 1e-15 there; the shift costs a few ulps).
 */
function lnGamma(x: number): number {
  let shift = 0;
  while (x < 15) {
    shift += Math.log(x);
    x += 1;
  }
  const r = 1 / (x * x);
  const series = (1 / x) * (1 / 12 - r * (1 / 360 - r * (1 / 1260 - r * (1 / 1680 - r / 1188))));
  return (x - 0.5) * Math.log(x) - x + 0.5 * Math.log(2 * Math.PI) + series - shift;
}

/** Continued fraction of the regularized incomplete beta (Numerical Recipes' betacf, modified Lentz). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 500; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** The regularized incomplete beta I_x(a, b). */
function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2)
    ? (front * betaContinuedFraction(a, b, x)) / a
    : 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** P(T <= t) for Student's t with df degrees of freedom (df > 0, not necessarily an integer). */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The p-quantile of Student's t with df degrees of freedom (bisection on the CDF, to ~1e-12). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`studentTQuantile: p must lie in (0, 1), got ${p}`);
  if (!(df > 0)) throw new RangeError(`studentTQuantile: df must be > 0, got ${df}`);
  let lo = -1;
  let hi = 1;
  while (studentTCdf(lo, df) > p) lo *= 2;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-13 * Math.max(1, Math.abs(lo)); i++) {
    const mid = 0.5 * (lo + hi);
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

export interface Difference {
  /** mean(b) - mean(a). */
  diff: number;
  /** Welch's interval at `level`; null when either side has fewer than 2 values or both have no spread. */
  low: number | null;
  high: number | null;
  /** Welch-Satterthwaite degrees of freedom. */
  df: number | null;
  /** Two-sided p-value of Welch's t test. */
  p: number | null;
  level: number;
}

/** mean(b) - mean(a) with Welch's t interval (two-sided, `level` = 0.95 by default). */
export function welchDifference(a: readonly number[], b: readonly number[], level = 0.95): Difference {
  const ma = moments(a);
  const mb = moments(b);
  const diff = mb.mean - ma.mean;
  const none = { diff, low: null, high: null, df: null, p: null, level };
  if (ma.n < 2 || mb.n < 2) return none;
  const va = (ma.sd * ma.sd) / ma.n;
  const vb = (mb.sd * mb.sd) / mb.n;
  const se2 = va + vb;
  if (!(se2 > 0)) return none;
  const df = (se2 * se2) / ((va * va) / (ma.n - 1) + (vb * vb) / (mb.n - 1));
  const se = Math.sqrt(se2);
  const q = studentTQuantile(1 - (1 - level) / 2, df);
  const t = diff / se;
  const p = 2 * (1 - studentTCdf(Math.abs(t), df));
  return { diff, low: diff - q * se, high: diff + q * se, df, p, level };
}
