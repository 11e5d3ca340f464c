// ArcFace / CosFace: the margin loss and its gradients against insightface's
// formulas in PyTorch (test/oracle/margin_oracle.py), in float64; the margin on
// the wrong class must fail the same comparison. Then the head inside a model:
// state-dict names, embed vs forward, and rebuilding from a run's config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { marginCrossEntropy, type MarginLossOptions } from '../src/train/margin-loss.js';
import { createModel, EmbeddingNet } from '../src/models/index.js';
import { DEFAULT_CONFIG, headOptions, validateConfig, type TrainConfig } from '../src/run/config.js';
import { repoRoot } from './fixres-helpers.js';

interface Case extends Omit<MarginLossOptions, 'labelSmoothing'> {
  n: number;
  d: number;
  classes: number;
  x: number[];
  w: number[];
  labels: number[];
  easy: boolean;
  smoothing: number;
}
interface Ref {
  loss: number;
  gx: number[];
  gw: number[];
  fallback: number;
}

function oracle(cases: Case[]): Ref[] {
  const out = execFileSync('/usr/bin/python3', [join(repoRoot, 'test', 'oracle', 'margin_oracle.py')], {
    input: JSON.stringify(cases),
    encoding: 'utf8',
    env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', PYTHONWARNINGS: 'ignore' },
  });
  return JSON.parse(out) as Ref[];
}

/** Our loss and gradients in float64: logits = s * unit(x) unit(w)^T, as MarginHead.forward computes them. */
function ours(c: Case, labels = c.labels): Ref {
  return T.tidy(() => {
    const x = T.tensor(Float64Array.from(c.x), [c.n, c.d]).setRequiresGrad(true);
    const w = T.tensor(Float64Array.from(c.w), [c.classes, c.d]).setRequiresGrad(true);
    const unit = (t: T.Tensor): T.Tensor => t.div(t.norm(2, 1, true).clampMin(1e-12));
    const logits = unit(x).matmul(unit(w).t()).mul(c.scale);
    const y = T.tensor(Int32Array.from(labels), [c.n]).long();
    const loss = marginCrossEntropy(logits, y, {
      type: c.type,
      scale: c.scale,
      margin: c.margin,
      easyMargin: c.easy,
      labelSmoothing: c.smoothing,
    });
    loss.backward();
    return {
      loss: loss.item(),
      gx: Array.from(x.grad!.data<'float64'>()),
      gw: Array.from(w.grad!.data<'float64'>()),
      fallback: 0,
    };
  });
}

/** Largest |a - b| relative to max(1, max|b|). */
function relErr(a: readonly number[], b: readonly number[]): number {
  const scale = Math.max(1, ...b.map(Math.abs));
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]!))) / scale;
}

function makeCase(type: 'arcface' | 'cosface', seed: number, o: Partial<Case> = {}): Case {
  const n = 6;
  const d = 5;
  const classes = 4;
  let s = seed;
  const rnd = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
  const w = Array.from({ length: classes * d }, rnd);
  const labels = Array.from({ length: n }, (_, i) => i % classes);
  const x = Array.from({ length: n * d }, rnd);
  // Sample 0 points away from its class centre: cos near -1 exercises ArcFace's fallback branch (theta + m > pi).
  for (let j = 0; j < d; j++) x[j] = -w[labels[0]! * d + j]! + 0.01 * rnd();
  return {
    type,
    n,
    d,
    classes,
    x,
    w,
    labels,
    scale: 16,
    margin: type === 'arcface' ? 0.5 : 0.35,
    easy: false,
    smoothing: 0,
    ...o,
  };
}

test('ArcFace / CosFace loss and gradients equal the PyTorch reference in float64; the wrong class fails', () => {
  const cases = [
    makeCase('arcface', 1),
    makeCase('arcface', 2, { easy: true }),
    makeCase('arcface', 3, { smoothing: 0.1, margin: 0.2 }),
    makeCase('cosface', 4),
    makeCase('cosface', 5, { smoothing: 0.1 }),
  ];
  const refs = oracle(cases);
  assert.ok(refs[0]!.fallback >= 1, 'the fallback branch is exercised');
  cases.forEach((c, i) => {
    const r = refs[i]!;
    const g = ours(c);
    const errs = [Math.abs(g.loss - r.loss) / Math.max(1, Math.abs(r.loss)), relErr(g.gx, r.gx), relErr(g.gw, r.gw)];
    assert.ok(
      errs.every((e) => e < 1e-10),
      `case ${i} (${c.type}): errors ${errs}`,
    );
    // Negative control: the margin applied to the next class instead of the true one.
    const wrong = ours(
      c,
      c.labels.map((l) => (l + 1) % c.classes),
    );
    assert.ok(Math.abs(wrong.loss - r.loss) > 1e-3 || relErr(wrong.gx, r.gx) > 1e-3, `case ${i}: wrong class passes`);
  });
  // Negative control: margin 0 is plain cross-entropy, which the reference with a margin is not.
  const plain = ours({ ...cases[0]!, margin: 0 });
  assert.ok(Math.abs(plain.loss - refs[0]!.loss) > 1e-3);
});

test('arcface head in a model: names, embed vs forward, rebuilt from a run config', () => {
  const cfg: TrainConfig = structuredClone(DEFAULT_CONFIG);
  cfg.model = { ...cfg.model, name: 'resnet18', head: 'arcface', embeddingDim: 64, bnNeck: true };
  cfg.data.root = '/x';
  validateConfig(cfg);
  const m = createModel('resnet18', { numClasses: 7, ...headOptions(cfg.model), log: null });
  try {
    assert.ok(m instanceof EmbeddingNet);
    const keys = [...m.stateDict().keys()];
    for (const k of ['backbone.conv1.weight', 'head.neck.weight', 'head.bn.running_mean', 'head.weight'])
      assert.ok(keys.includes(k), k);
    assert.ok(!keys.some((k) => k.startsWith('backbone.fc.')), 'backbone is headless');
    assert.ok(!keys.includes('head.neck.bias'), 'BN-neck: the Linear has no bias');
    m.eval();
    T.tidy(() =>
      T.noGrad(() => {
        const x = T.randn([3, 3, 32, 32]);
        const logits = m.forward(x);
        assert.deepEqual(logits.shape, [3, 7]);
        const e = (m as EmbeddingNet).embed(x);
        assert.deepEqual(e.shape, [3, 64]);
        const w = (m as EmbeddingNet).head.weight;
        const cos = e
          .div(e.norm(2, 1, true))
          .matmul(w.div(w.norm(2, 1, true)).t())
          .mul(30);
        assert.ok(logits.sub(cos).abs().max().item() < 1e-4, 'forward = s * cos(embedding, centres)');
        assert.ok(logits.abs().max().item() <= 30 + 1e-4);
      }),
    );
    // A second model from the same config loads the first one's state dict exactly (what eval/predict do).
    const again = createModel('resnet18', { numClasses: 7, ...headOptions(cfg.model), log: null });
    again.loadStateDict(m.stateDict());
    again.dispose();
    const linear = createModel('resnet18', { numClasses: 7, log: null });
    assert.throws(() => linear.loadStateDict(m.stateDict()), 'a softmax model does not take the arcface weights');
    linear.dispose();
  } finally {
    m.dispose();
  }
  cfg.model.head = 'triplet' as never;
  assert.throws(() => validateConfig(cfg), /model.head/);
});
