// The logit-adjusted loss (Menon et al. 2021; config loss.logitAdjust) against a float64 hand computation of
// cross-entropy with label smoothing over logits + tau x log(prior), loss and gradient; the plain loss (no
// adjustment) must fail the same comparison, and tau 0 must be exactly the plain loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/tensor/index.js';
import { createLoss, logitAdjustment } from '../src/train/loss.js';
import { DEFAULT_CONFIG, validateConfig, type TrainConfig } from '../src/run/config.js';
import { Rng } from '../src/util/rng.js';

const COUNTS = [600, 100, 20, 10, 1, 0];
const K = COUNTS.length;

/** float64: mean over rows of (1 - eps) x (-log p_y) + eps x mean_k(-log p_k), p = softmax(x + tau log prior). */
function handLoss(x: number[][], y: number[], eps: number, tau: number): { loss: number; grad: number[][] } {
  const n = COUNTS.map((c) => Math.max(1, c));
  const total = n.reduce((a, b) => a + b, 0);
  const off = n.map((c) => tau * Math.log(c / total));
  let loss = 0;
  const grad = x.map((row, i) => {
    const z = row.map((v, k) => v + off[k]!);
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0));
    const logp = z.map((v) => v - lse);
    loss += (1 - eps) * -logp[y[i]!]! + (eps / K) * logp.reduce((s, v) => s - v, 0);
    // d/dz = p - target, target = (1 - eps) onehot + eps / K; averaged over rows.
    return logp.map((lp, k) => (Math.exp(lp) - ((k === y[i] ? 1 - eps : 0) + eps / K)) / x.length);
  });
  return { loss: loss / x.length, grad };
}

function lossAndGrad(x: number[][], y: number[], eps: number, tau: number): { loss: number; grad: number[][] } {
  const fn = createLoss({ labelSmoothing: eps, logitAdjust: { tau, classCounts: COUNTS } });
  return T.tidy(() => {
    const xt = T.tensor(Float32Array.from(x.flat()), [x.length, K]).setRequiresGrad(true);
    const l = fn(xt, T.tensor(Int32Array.from(y), [y.length]).long());
    l.backward();
    const g = xt.grad!.toArray();
    return { loss: l.item(), grad: x.map((_, i) => g.slice(i * K, (i + 1) * K)) };
  });
}

function maxDiff(a: number[][], b: number[][]): number {
  return Math.max(...a.flatMap((r, i) => r.map((v, k) => Math.abs(v - b[i]![k]!))));
}

test('logitAdjustment: tau x log(n_k / N) in float64, an empty class counted as one photo', () => {
  const total = 600 + 100 + 20 + 10 + 1 + 1;
  for (const tau of [1, 0.5, 2]) {
    const got = logitAdjustment(tau, COUNTS);
    const want = COUNTS.map((c) => tau * Math.log(Math.max(1, c) / total));
    got.forEach((v, k) =>
      assert.ok(Math.abs(v - want[k]!) <= 1e-6 * Math.max(1, Math.abs(want[k]!)), `tau ${tau} k ${k}`),
    );
  }
  assert.throws(() => logitAdjustment(-1, COUNTS), /tau must be >= 0/);
  assert.throws(() => logitAdjustment(1, [3, 1.5]), /not a count/);
});

test('logit-adjusted cross-entropy: loss and gradient match float64, the plain loss does not', () => {
  const rng = new Rng(28);
  const x = Array.from({ length: 8 }, () => Array.from({ length: K }, () => rng.normal() * 2));
  const y = [0, 1, 2, 3, 4, 5, 5, 4];
  const before = T.memory().tensors;
  for (const eps of [0, 0.1]) {
    for (const tau of [1, 0.5]) {
      const want = handLoss(x, y, eps, tau);
      const got = lossAndGrad(x, y, eps, tau);
      const tol = 1e-5 * Math.max(1, Math.abs(want.loss));
      assert.ok(Math.abs(got.loss - want.loss) <= tol, `eps ${eps} tau ${tau}: ${got.loss} vs ${want.loss}`);
      assert.ok(maxDiff(got.grad, want.grad) <= 1e-5, `gradient eps ${eps} tau ${tau}`);
      // Negative control: without the adjustment the same comparison fails by far.
      const plain = lossAndGrad(x, y, eps, 0);
      assert.ok(Math.abs(plain.loss - want.loss) > 100 * tol, `the plain loss differs (eps ${eps} tau ${tau})`);
      assert.ok(maxDiff(plain.grad, want.grad) > 1e-3);
      // tau 0 is the plain loss.
      const zero = handLoss(x, y, eps, 0);
      assert.ok(Math.abs(plain.loss - zero.loss) <= 1e-5 * Math.max(1, zero.loss));
    }
  }
  assert.equal(T.memory().tensors, before, 'no tensor leaks');
});

test('logit adjustment: refused with a margin head, a class-count mismatch, and an out-of-range loss.logitAdjust', () => {
  assert.throws(
    () =>
      createLoss({
        labelSmoothing: 0,
        margin: { type: 'arcface', scale: 30, margin: 0.5, easyMargin: false, labelSmoothing: 0 },
        logitAdjust: { tau: 1, classCounts: COUNTS },
      }),
    /not to a margin head/,
  );
  const fn = createLoss({ labelSmoothing: 0, logitAdjust: { tau: 1, classCounts: [5, 5] } });
  assert.throws(
    () => T.tidy(() => fn(T.zeros([2, 3]), T.tensor(Int32Array.from([0, 1]), [2]).long())),
    /2 class counts for logits of 3 classes/,
  );
  const c = (v: unknown) =>
    ({
      ...DEFAULT_CONFIG,
      data: { ...DEFAULT_CONFIG.data, root: 'photos' },
      loss: { ...DEFAULT_CONFIG.loss, logitAdjust: v },
    }) as TrainConfig;
  assert.doesNotThrow(() => validateConfig(c(1)));
  assert.throws(() => validateConfig(c(-0.5)), /loss\.logitAdjust/);
  assert.throws(() => validateConfig(c('1')), /loss\.logitAdjust/);
});
