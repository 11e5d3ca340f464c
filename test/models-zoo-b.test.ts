// EfficientNet B0-B7 and Swin-T against torchvision 0.14 (the oracle): the same
// weights give the same eval logits and the same gradients after one training
// step, compared in float64 on both sides so that the bound holds on any CPU,
// with negative controls (SE without its sigmoid, Swin without the window shift)
// that must fail it; every variant has torchvision's parameter count, runs
// forward at two resolutions and backward, and round-trips its state dict.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { createModel, getModelCfg, listModels, type ClassifierModel } from '../src/models/index.js';
import { runOracle, loadTensors, relError, compareGradient, TWIN_TOL, type OracleRun } from './nn-helpers.js';

let oracle: OracleRun;
let result: Map<string, T.Tensor>;

before(() => {
  oracle = runOracle('zoo_b_oracle.py', String(T.getNumThreads()));
  result = loadTensors(join(oracle.dir, 'result.safetensors'));
});

after(() => {
  for (const t of result?.values() ?? []) t.dispose();
  oracle?.cleanup();
});

// Our name -> the oracle's case (torchvision's name).
const CASES: Record<string, string> = {
  efficientnet_b0: 'efficientnet_b0',
  efficientnet_b3: 'efficientnet_b3',
  swin_tiny_patch4_window7_224: 'swin_t',
};
/** Negative controls: our model -> an oracle case with its weights and a wrong architecture. */
const NEGATIVE: [string, string][] = [
  ['efficientnet_b0', 'efficientnet_b0~se_no_sigmoid'],
  ['swin_tiny_patch4_window7_224', 'swin_t~no_shift'],
];

/** Sizes the oracle used per case: eval-mode sizes and the training-step size. */
function sizesOf(tv: string): { eval: number[]; train: number } {
  return (oracle.json.cases as Record<string, { eval: number[]; train: number }>)[tv]!;
}

/** Our `name` with the weights of torchvision case `tv` (its base case for a negative control), in float64. */
function load(name: string, tv: string): ClassifierModel {
  const m = createModel(name, {
    numClasses: 10,
    pretrained: join(oracle.dir, `${tv.split('~')[0]}.safetensors`),
    log: null,
    dropRate: 0,
    dropPathRate: 0,
  });
  return m.to({ dtype: 'float64' });
}

/** Eval logits at every size of the case, then one training step: the errors against the oracle's case `tv`. */
function compareCase(
  name: string,
  tv: string,
): { evalErrs: number[]; lossErr: number; maxGradErr: number; failures: string[]; compared: number } {
  const model = load(name, tv);
  try {
    model.eval();
    const evalErrs = sizesOf(tv).eval.map((s) =>
      T.tidy(() =>
        relError(
          T.noGrad(() => model.forward(result.get(`${tv}.x${s}`)!)),
          result.get(`${tv}.eval.${s}`)!,
        ),
      ),
    );
    model.train();
    const s = sizesOf(tv).train;
    return T.tidy(() => {
      const loss = T.F.crossEntropy(model.forward(result.get(`${tv}.x${s}`)!), result.get(`${tv}.y`)!);
      loss.backward();
      const expected = (oracle.json.losses as Record<string, number>)[tv]!;
      const lossErr = Math.abs(loss.item() - expected) / Math.abs(expected);
      const failures: string[] = [];
      let compared = 0,
        maxGradErr = 0;
      const params = model.namedParameters();
      const scale = Math.max(...params.map(([, p]) => (p.grad ? p.grad.abs().max().item() : 0)));
      for (const [k, p] of params) {
        const ref = result.get(`${tv}.grad.${k}`);
        if (!ref) {
          failures.push(`${k}: the oracle has no gradient`);
          continue;
        }
        compared++;
        if (!p.grad) {
          failures.push(`${k}: no gradient`);
          continue;
        }
        const { err, failure } = compareGradient(k, p.grad, ref, scale);
        if (Number.isFinite(err)) maxGradErr = Math.max(maxGradErr, err);
        if (failure) failures.push(failure);
      }
      assert.equal(
        compared,
        [...result.keys()].filter((k) => k.startsWith(`${tv}.grad.`)).length,
        'every torchvision parameter is compared',
      );
      return { evalErrs, lossErr, maxGradErr, failures, compared };
    });
  } finally {
    model.dispose();
  }
}

for (const [name, tv] of Object.entries(CASES)) {
  test(`${name}: eval logits, one training step's loss and every parameter's gradient equal torchvision ${tv}'s in float64 (${TWIN_TOL})`, (t) => {
    const before = T.memory().tensors;
    const r = compareCase(name, tv);
    t.diagnostic(
      `errors: eval ${r.evalErrs.map((e) => e.toExponential(1)).join('/')}, loss ${r.lossErr.toExponential(1)}, worst gradient ${r.maxGradErr.toExponential(1)}`,
    );
    assert.ok(r.evalErrs.length >= 1);
    r.evalErrs.forEach((e, i) => assert.ok(e < TWIN_TOL, `${name} at ${sizesOf(tv).eval[i]}px: relative error ${e}`));
    assert.ok(r.lossErr < TWIN_TOL, `loss: relative error ${r.lossErr}`);
    assert.deepEqual(r.failures, [], `gradients over ${TWIN_TOL} relative error`);
    assert.equal(T.memory().tensors, before, 'no tensor leaks');
  });
}

test(`negative controls: ${NEGATIVE.map(([, tv]) => tv).join(', ')} fail the same float64 comparison`, (t) => {
  for (const [name, tv] of NEGATIVE) {
    const r = compareCase(name, tv);
    t.diagnostic(
      `${tv}: eval ${r.evalErrs.map((e) => e.toExponential(1)).join('/')}, worst gradient ${r.maxGradErr.toExponential(1)}`,
    );
    assert.ok(Math.min(...r.evalErrs) > 1e3 * TWIN_TOL, `${tv}: eval logits must differ at every size`);
    assert.ok(r.failures.length > 0, `${tv}: gradients must differ`);
  }
});

// torchvision's published parameter counts (Weights.meta.num_params), 1000 classes.
const PARAMS: Record<string, number> = {
  efficientnet_b0: 5_288_548,
  efficientnet_b1: 7_794_184,
  efficientnet_b2: 9_109_994,
  efficientnet_b3: 12_233_232,
  efficientnet_b4: 19_341_616,
  efficientnet_b5: 30_389_784,
  efficientnet_b6: 43_040_704,
  efficientnet_b7: 66_347_960,
  swin_tiny_patch4_window7_224: 28_288_354,
};

// [eval-mode forward sizes, training forward+backward size]: 224 and a small one (B4-B7 at their own
// 380-600 px would take too long here); backward at a small size (batch 1 keeps BN statistics defined).
const SIZES: Record<string, [number[], number]> = {
  ...Object.fromEntries(
    Object.keys(PARAMS)
      .filter((n) => n.startsWith('efficientnet'))
      .map((n) => [n, [[224, 80], 64]]),
  ),
  swin_tiny_patch4_window7_224: [[224, 100], 96],
};

test('the registry lists every EfficientNet B0-B7 and Swin-T variant', () => {
  assert.deepEqual([...listModels('efficientnet_b*'), ...listModels('swin*')].sort(), Object.keys(PARAMS).sort());
});

for (const [name, [evalSizes, trainSize]] of Object.entries(SIZES)) {
  test(`${name}: ${PARAMS[name]} parameters, forward at ${evalSizes.join(' and ')} px, backward at ${trainSize} px, state-dict round trip`, () => {
    T.tidy(() => {
      const m = createModel(name);
      assert.equal(m.numParameters(), PARAMS[name], `${name} parameter count`);
      m.resetClassifier(5);
      m.eval();
      let small: T.Tensor | undefined, smallLogits: T.Tensor | undefined;
      for (const s of evalSizes) {
        const x = T.randn([1, 3, s, s]);
        const f = T.noGrad(() => m.forwardFeatures(x));
        assert.equal(f.shape[1], m.numFeatures, `${name}: feature channels at ${s}px`);
        const logits = T.noGrad(() => m.forwardHead(f));
        assert.deepEqual(logits.shape, [1, 5]);
        assert.ok(logits.isfinite().all().item(), `${name}: finite logits at ${s}px`);
        if (small === undefined || s < small.shape[2]!) {
          small = x;
          smallLogits = logits;
        }
      }
      const twin = createModel(name, { numClasses: 5 });
      twin.loadStateDict(m.stateDict());
      assert.ok(
        T.noGrad(() => twin.eval().forward(small!)).equal(smallLogits!),
        `${name}: state-dict round trip gives identical logits`,
      );
      twin.dispose();

      m.train();
      const loss = T.F.crossEntropy(
        m.forward(T.randn([1, 3, trainSize, trainSize])),
        T.tensor([3], [1], { dtype: 'int64' }),
      );
      loss.backward();
      const params = m.namedParameters();
      const missing = params.filter(([, p]) => p.grad === undefined).map(([k]) => k);
      assert.deepEqual(missing, [], `${name}: every parameter gets a gradient`);
      const g = params[0]![1].grad!;
      assert.ok(
        g.isfinite().all().item() && g.abs().sum().item() > 0,
        `${name}: the stem's gradient is finite and non-zero`,
      );
      m.dispose();
    });
  });
}

test('configs: torchvision eval transforms, classifier and first-conv names that exist in the state dict', () => {
  const b0 = getModelCfg('efficientnet_b0');
  assert.deepEqual(
    [b0.inputSize, b0.interpolation, b0.cropPct, b0.classifier],
    [[3, 224, 224], 'bicubic', 224 / 256, 'classifier.1'],
  );
  assert.deepEqual(getModelCfg('efficientnet_b7').inputSize, [3, 600, 600]);
  const sw = getModelCfg('swin_tiny_patch4_window7_224');
  assert.deepEqual(
    [sw.inputSize, sw.interpolation, sw.cropPct, sw.classifier],
    [[3, 224, 224], 'bicubic', 224 / 232, 'head'],
  );
  for (const name of ['efficientnet_b0', 'swin_tiny_patch4_window7_224']) {
    T.tidy(() => {
      const m = createModel(name, { numClasses: 3 });
      const cfg = getModelCfg(name);
      const keys = [...m.stateDict().keys()];
      assert.ok(keys.includes(`${cfg.classifier}.weight`) && keys.includes(`${cfg.firstConv}.weight`), name);
      assert.equal(m.getClassifier(), m.namedModules().find(([k]) => k === cfg.classifier)![1]);
      assert.deepEqual(T.noGrad(() => m.eval().forwardHead(T.zeros([2, m.numFeatures, 7, 7]), true)).shape, [
        2,
        m.numFeatures,
      ]);
      m.resetClassifier(0);
      assert.deepEqual(T.noGrad(() => m.forward(T.zeros([1, 3, 64, 64]))).shape, [1, m.numFeatures]);
      m.dispose();
    });
  }
});

test('pretrained torchvision weights with another class count keep a fresh classifier and say so', () => {
  const logs: string[] = [];
  const m = createModel('efficientnet_b0', {
    numClasses: 4,
    pretrained: join(oracle.dir, 'efficientnet_b0.safetensors'),
    log: (s) => logs.push(s),
  });
  assert.match(
    logs[0]!,
    /skipped classifier\.1\.weight \[10, 1280\], classifier\.1\.bias \[10\].*classifier re-initialised/,
  );
  m.dispose();
});

test("swin: a fresh model's relative_position_index buffers equal torchvision's (pretrained loading overwrites them)", () => {
  const tv = loadTensors(join(oracle.dir, 'swin_t.safetensors'));
  const m = createModel('swin_tiny_patch4_window7_224', { numClasses: 10 });
  T.tidy(() => {
    const mine = [...m.stateDict()].filter(([k]) => k.endsWith('relative_position_index'));
    assert.equal(mine.length, 12);
    for (const [k, t] of mine) assert.ok(t.equal(tv.get(k)!), k);
  });
  m.dispose();
  for (const t of tv.values()) t.dispose();
});

test("head 'wide' puts numFeatures -> 4096 -> classes in the classifier slot of EfficientNet and Swin", () => {
  for (const [name, size, prefix] of [
    ['efficientnet_b0', 64, 'classifier.1'],
    ['swin_tiny_patch4_window7_224', 96, 'head'],
  ] as const) {
    const m = createModel(name, { numClasses: 7, head: 'wide', log: null });
    try {
      const sd = m.stateTensors();
      assert.deepEqual(sd.get(`${prefix}.0.weight`)?.shape, [4096, m.numFeatures]);
      assert.deepEqual(sd.get(`${prefix}.3.weight`)?.shape, [7, 4096]);
      const out = T.tidy(() => T.noGrad(() => m.eval().forward(T.randn([2, 3, size, size])).shape));
      assert.deepEqual(out, [2, 7]);
    } finally {
      m.dispose();
    }
  }
});
