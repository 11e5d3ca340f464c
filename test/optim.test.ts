// Optimizers and schedules against PyTorch 1.13: AdamW with a per-iteration
// cosine-with-warmup schedule on torchvision's resnet50, the schedules' lr
// sequences, and state-dict round trips. The AdamW run is compared in float64 (both
// sides, same float32 weights), and fails with a wrong weight decay (negative control).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import * as nn from '../src/nn/index.js';
import { createModel } from '../src/models/index.js';
import { AdamW, SGD, CosineWarmupLR, StepLR, paramGroupsNoDecay, type ParamGroupSpec } from '../src/optim/index.js';
import { runOracle, loadTensors, relError, TWIN_TOL, type OracleRun } from './nn-helpers.js';

const TOL = TWIN_TOL;
let oracle: OracleRun;

before(() => {
  oracle = runOracle('nn_oracle.py', String(T.getNumThreads()), 'adamw', 'float64');
});
after(() => oracle?.cleanup());

/** 3 AdamW steps in float64 under the warmup-cosine schedule; the lrs and the entries over TOL against the oracle. */
function adamwSteps(weightDecay: number): { lrs: number[][]; worst: string[] } {
  const inputs = loadTensors(join(oracle.dir, 'inputs.safetensors'));
  const result = loadTensors(join(oracle.dir, 'result.safetensors'));
  const model = createModel('resnet50', { numClasses: 10, pretrained: join(oracle.dir, 'weights.pth'), log: null });
  model.to({ dtype: 'float64' }).train();
  const groups = paramGroupsNoDecay(model, weightDecay);
  const opt = new AdamW(groups, { lr: 1e-3 });
  // 10 iterations = 5 epochs of 2 iterations, the first epoch warming up from 0.1 x lr.
  const sched = new CosineWarmupLR(opt, {
    epochs: 5,
    warmupEpochs: 1,
    warmupStartFactor: 0.1,
    minLr: 1e-5,
    interval: 'iteration',
    stepsPerEpoch: 2,
  });
  const lrs: number[][] = [];
  const x = inputs.get('x')!.to({ dtype: 'float64' }).keep();
  for (let i = 0; i < 3; i++) {
    opt.zeroGrad();
    T.tidy(() => T.F.crossEntropy(model.forward(x), inputs.get('y')!, { labelSmoothing: 0.1 }).backward());
    lrs.push(sched.getLastLr());
    opt.step();
    sched.step();
  }
  const names = groups.flatMap((g) => g.names);
  const worst: string[] = [];
  T.tidy(() => {
    for (const [k, t] of model.stateDict()) {
      const ref = result.get(`after.${k}`)!;
      const err = t.dtype === 'int64' ? (t.equal(ref) ? 0 : Infinity) : relError(t, ref);
      if (!(err < TOL)) worst.push(`${k} ${err}`);
    }
    const st = opt.stateDict();
    for (const [i, s] of st.state) {
      assert.equal(s.step, 3);
      for (const key of ['exp_avg', 'exp_avg_sq']) {
        const err = relError(s[key] as T.Tensor, result.get(`opt.${names[i]}.${key}`)!);
        if (!(err < TOL)) worst.push(`${key} of ${names[i]} ${err}`);
      }
    }
    assert.equal(st.state.size, names.length);
  });
  for (const t of [x, ...inputs.values(), ...result.values()]) t.dispose();
  opt.dispose();
  model.dispose();
  return { lrs, worst };
}

test(`AdamW + cosine warmup stepped per iteration: lrs to 1e-12, parameters and moments within ${TOL} of PyTorch (float64)`, () => {
  const { lrs, worst } = adamwSteps(0.05);
  const expectedLrs = oracle.json.lrs as number[][];
  lrs.forEach((row, i) =>
    row.forEach((lr, j) =>
      assert.ok(Math.abs(lr - expectedLrs[i]![j]!) < 1e-12, `lr step ${i}: ${lr} vs ${expectedLrs[i]![j]}`),
    ),
  );
  assert.deepEqual(worst, []);
});

test('negative control: AdamW with weight decay 0.01 instead of 0.05 fails that comparison', () => {
  const { worst } = adamwSteps(0.01);
  assert.ok(worst.length > 50, `only ${worst.length} entries differ`);
});

test('schedules equal PyTorch SequentialLR(LinearLR, CosineAnnealingLR) and StepLR to 1e-12', () => {
  const seqs = oracle.json.schedules as { cosine_warmup: number[]; step: number[] };
  const p = T.zeros([1]).keep();
  const run = (opt: SGD, sched: { step(): void }, n: number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      out.push(opt.paramGroups[0]!.lr);
      sched.step();
    }
    return out;
  };
  const close = (a: number[], b: number[], what: string): void => {
    assert.equal(a.length, b.length);
    a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) < 1e-12, `${what} step ${i}: ${v} vs ${b[i]}`));
  };
  const o1 = new SGD([p], { lr: 0.1 });
  close(
    run(o1, new CosineWarmupLR(o1, { epochs: 20, warmupEpochs: 5, warmupStartFactor: 0.01, minLr: 1e-6 }), 20),
    seqs.cosine_warmup,
    'cosine',
  );
  const o2 = new SGD([p], { lr: 0.05 });
  close(run(o2, new StepLR(o2, { stepSize: 3, gamma: 0.5 }), 10), seqs.step, 'step');
  // Per iteration with 4 iterations per epoch: every 4th value is the per-epoch schedule.
  const o3 = new SGD([p], { lr: 0.05 });
  const perIter = run(o3, new StepLR(o3, { stepSize: 3, gamma: 0.5, interval: 'iteration', stepsPerEpoch: 4 }), 40);
  close(
    perIter.filter((_, i) => i % 4 === 0),
    seqs.step,
    'step per iteration',
  );
  p.dispose();
});

test('scheduler and optimizer state dicts resume exactly', () => {
  T.manualSeed(3);
  const make = (): nn.Sequential => new nn.Sequential(new nn.Linear(5, 4), new nn.ReLU(), new nn.Linear(4, 3));
  const a = make();
  const b = make();
  b.loadStateDict(T.tidy(() => a.stateDict()));
  const x = T.randn([6, 5]).keep();
  const y = T.tensor([0, 1, 2, 0, 1, 2], undefined, { dtype: 'int64' }).keep();
  const trainStep = (m: nn.Module, opt: SGD | AdamW): void => {
    opt.zeroGrad();
    T.tidy(() => T.F.crossEntropy(m.forward(x), y).backward());
    opt.step();
  };
  for (const Opt of [SGD, AdamW] as const) {
    const oa =
      Opt === SGD
        ? new SGD(a.parameters(), { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3 })
        : new AdamW(a.parameters(), { lr: 0.01, amsgrad: true });
    const sa = new CosineWarmupLR(oa, { epochs: 6, warmupEpochs: 2, minLr: 1e-4 });
    trainStep(a, oa);
    sa.step();
    trainStep(a, oa);
    sa.step();
    // b gets a's weights and both states, then both take the same two steps.
    b.loadStateDict(T.tidy(() => a.stateDict()));
    const ob = Opt === SGD ? new SGD(b.parameters(), { lr: 0.5 }) : new AdamW(b.parameters(), { lr: 0.5 });
    const sd = oa.stateDict();
    ob.loadStateDict(sd);
    for (const s of sd.state.values()) for (const v of Object.values(s)) if (v instanceof T.Tensor) v.dispose();
    const sb = new CosineWarmupLR(ob, { epochs: 6, warmupEpochs: 2, minLr: 1e-4 });
    sb.loadStateDict(sa.stateDict());
    assert.deepEqual(sb.getLastLr(), sa.getLastLr());
    for (let i = 0; i < 2; i++) {
      trainStep(a, oa);
      sa.step();
      trainStep(b, ob);
      sb.step();
    }
    T.tidy(() => {
      const sdb = b.stateDict();
      for (const [k, t] of a.stateDict()) assert.ok(t.equal(sdb.get(k)!), `${Opt.name}: ${k} diverged after resuming`);
    });
    oa.dispose();
    ob.dispose();
  }
  assert.throws(
    () => new SGD(a.parameters(), { lr: 0.1 }).loadStateDict({ state: new Map(), param_groups: [] }),
    /0 parameter groups/,
  );
  x.dispose();
  y.dispose();
  a.dispose();
  b.dispose();
});

test('paramGroupsNoDecay: biases and norm weights without decay, classifier with its own lr', () => {
  T.manualSeed(0);
  const model = createModel('resnet18', { numClasses: 5 });
  model.freeze('layer1');
  const groups: ParamGroupSpec[] = paramGroupsNoDecay(model, 1e-4, { head: { pattern: 'fc', lr: 0.5 } });
  assert.deepEqual(
    groups.map((g) => [g.weightDecay, g.lr]),
    [
      [0, undefined],
      [1e-4, undefined],
      [0, 0.5],
      [1e-4, 0.5],
    ],
  );
  assert.deepEqual(groups[2]!.names, ['fc.bias']);
  assert.deepEqual(groups[3]!.names, ['fc.weight']);
  assert.ok(groups[0]!.names.includes('bn1.weight') && groups[0]!.names.every((n) => !n.startsWith('layer1.')));
  assert.ok(
    groups[1]!.names.every(
      (n) => n.endsWith('conv1.weight') || n.endsWith('conv2.weight') || n.endsWith('downsample.0.weight'),
    ),
  );
  const opt = new SGD(groups, { lr: 0.1, momentum: 0.9 });
  assert.deepEqual(
    opt.paramGroups.map((g) => g.lr),
    [0.1, 0.1, 0.5, 0.5],
  );
  const packed = opt.stateDict().param_groups;
  assert.deepEqual(
    packed.map((g) => g.weight_decay),
    [0, 1e-4, 0, 1e-4],
  );
  assert.equal(
    packed.reduce((n, g) => n + g.params.length, 0),
    model.parameters().filter((p) => p.requiresGrad).length,
  );
  assert.throws(
    () => new SGD(model.parameters(), { lr: 0.1, nesterov: true }),
    /Nesterov momentum requires a momentum/,
  );
  assert.throws(() => new AdamW(model.parameters(), { betas: [0.9, 1.5] }), /betas in \[0, 1\)/);
  assert.throws(() => new SGD([...groups, { params: groups[0]!.params }], { lr: 0.1 }), /more than one group/);
  model.dispose();
});
