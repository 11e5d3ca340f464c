// ResNet-50 against torchvision 1.13 (the oracle): same init for the same seed,
// same eval logits from safetensors and .pth weights, and the same parameters,
// running stats and momentum buffers after 3 SGD steps with label smoothing. Both
// sides compute in float64 from the same float32 weights (a bound that holds on any
// CPU), and the same comparison fails for a run without label smoothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import * as nn from '../src/nn/index.js';
import { createModel, listModels, getModelEntry, type ResNet } from '../src/models/index.js';
import { SGD, paramGroupsNoDecay } from '../src/optim/index.js';
import { runOracle, loadTensors, relError, TWIN_TOL, type OracleRun } from './nn-helpers.js';

const TOL = TWIN_TOL;
let oracle: OracleRun;
let inputs: Map<string, T.Tensor>;
let result: Map<string, T.Tensor>;

before(() => {
  oracle = runOracle('nn_oracle.py', String(T.getNumThreads()), 'sgd', 'float64');
  inputs = loadTensors(join(oracle.dir, 'inputs.safetensors'));
  result = loadTensors(join(oracle.dir, 'result.safetensors'));
});

after(() => {
  for (const t of [...(inputs?.values() ?? []), ...(result?.values() ?? [])]) t.dispose();
  oracle?.cleanup();
});

test('resnet50 initialisation equals torchvision for the same seed', () => {
  T.manualSeed(0);
  const model = createModel('resnet50', { numClasses: 10 });
  const expected = oracle.json.init_check as Record<string, number[]>;
  T.tidy(() => {
    const sd = model.stateDict();
    for (const [k, values] of Object.entries(expected)) {
      assert.deepEqual(sd.get(k)!.flatten().slice(0, 0, 6).toArray(), values, k);
    }
  });
  model.dispose();
});

test('eval-mode logits match torchvision from safetensors and from a wrapped .pth', () => {
  const logs: string[] = [];
  for (const file of ['weights.safetensors', 'weights.pth']) {
    const model = createModel('resnet50', {
      numClasses: 10,
      pretrained: join(oracle.dir, file),
      log: (m) => logs.push(m),
    });
    model.to({ dtype: 'float64' }).eval();
    const err = T.tidy(() =>
      relError(
        T.noGrad(() => model.forward(inputs.get('x')!.to({ dtype: 'float64' }))),
        result.get('eval.logits')!,
      ),
    );
    assert.ok(err < TOL, `${file}: relative error ${err}`);
    model.dispose();
  }
  assert.equal(logs.length, 2);
  assert.match(logs[0]!, /loaded 320 tensors/);
  assert.doesNotMatch(logs[0]!, /skipped/);
});

/** 3 SGD momentum steps in float64 from the oracle's weights; the entries over TOL against the oracle's state. */
function sgdSteps(labelSmoothing: number): { losses: number[]; worst: [string, number][] } {
  const model = createModel('resnet50', {
    numClasses: 10,
    pretrained: join(oracle.dir, 'weights.safetensors'),
    log: null,
  });
  model.to({ dtype: 'float64' }).train();
  const groups = paramGroupsNoDecay(model, 1e-4);
  const opt = new SGD(groups, { lr: 0.1, momentum: 0.9 });
  const losses: number[] = [];
  const worst: [string, number][] = [];
  T.tidy(() => {
    const x = inputs.get('x')!.to({ dtype: 'float64' }),
      y = inputs.get('y')!;
    for (let i = 0; i < 3; i++) {
      opt.zeroGrad();
      T.tidy(() => {
        const loss = T.F.crossEntropy(model.forward(x), y, { labelSmoothing });
        loss.backward();
        losses.push(loss.item());
      });
      opt.step();
    }
    const sd = model.stateDict();
    let compared = 0;
    for (const [k, t] of sd) {
      const ref = result.get(`after.${k}`);
      assert.ok(ref, `oracle lacks ${k}`);
      const err = k.endsWith('num_batches_tracked') ? (t.equal(ref) ? 0 : Infinity) : relError(t, ref);
      if (!(err < TOL)) worst.push([k, err]);
      compared++;
    }
    assert.equal(compared, 320);
    const names = groups.flatMap((g) => g.names);
    const st = opt.stateDict();
    assert.equal(st.state.size, names.length);
    for (const [i, s] of st.state) {
      const ref = result.get(`opt.${names[i]}.momentum_buffer`)!;
      const err = relError(s.momentum_buffer as T.Tensor, ref);
      if (!(err < TOL)) worst.push([`momentum_buffer of ${names[i]}`, err]);
    }
  });
  opt.dispose();
  model.dispose();
  return { losses, worst };
}

test(`3 SGD momentum steps with label smoothing: every parameter, running stat and momentum buffer matches (float64, ${TOL})`, () => {
  const before = T.memory().tensors;
  const { losses, worst } = sgdSteps(0.1);
  const expectedLosses = oracle.json.losses as number[];
  losses.forEach((l, i) =>
    assert.ok(
      Math.abs(l - expectedLosses[i]!) <= TOL * Math.abs(expectedLosses[i]!),
      `loss ${i}: ${l} vs ${expectedLosses[i]}`,
    ),
  );
  assert.deepEqual(worst, [], `entries over ${TOL} relative error: ${worst.map(([k, e]) => `${k} ${e}`).join(', ')}`);
  assert.equal(T.memory().tensors, before, 'the training loop leaks no tensors');
});

test('negative control: the same run without label smoothing fails that comparison', () => {
  const { worst } = sgdSteps(0);
  assert.ok(worst.length > 100, `only ${worst.length} entries differ`);
});

test('pretrained with another class count re-initialises the classifier and says so', () => {
  const logs: string[] = [];
  const model = createModel('resnet50', {
    numClasses: 7,
    pretrained: join(oracle.dir, 'weights.safetensors'),
    log: (m) => logs.push(m),
  });
  assert.match(logs[0]!, /loaded 318 tensors .*skipped fc\.weight \[10, 2048\], fc\.bias \[10\]/);
  T.tidy(() => {
    const sd = model.stateDict();
    assert.deepEqual(sd.get('fc.weight')!.shape, [7, 2048]);
    assert.ok(
      relError(sd.get('layer4.2.conv3.weight')!, result.get('after.layer4.2.conv3.weight')!) > 0,
      'sanity: trained weights differ',
    );
  });
  model.dispose();
});

test('createModel: unknown names list close ones; options override the variant', () => {
  assert.throws(() => createModel('resnet05'), /Unknown model 'resnet05'; did you mean .*resnet50/);
  assert.ok(listModels('resnet*').includes('resnet101'));
  const m = createModel('resnet18', { numClasses: 3, inChans: 1 }) as ResNet;
  T.tidy(() => {
    assert.deepEqual(m.stateDict().get('conv1.weight')!.shape, [64, 1, 7, 7]);
    assert.deepEqual(m.eval().forward(T.randn([1, 1, 32, 32])).shape, [1, 3]);
  });
  m.dispose();
});

// Published parameter counts (torchvision model docs), 1000 classes.
const PARAMS: Record<string, number> = {
  resnet18: 11_689_512,
  resnet34: 21_797_672,
  resnet50: 25_557_032,
  resnet101: 44_549_160,
  resnet152: 60_192_808,
  resnext50_32x4d: 25_028_904,
};

// Other families (inception_resnet_v2 needs >= 75 px) have their own zoo tests.
test('every registered ResNet-family model: published parameter count, features/head/reset, state-dict round trip', () => {
  for (const name of listModels().filter((n) => getModelEntry(n).family === 'resnet')) {
    T.tidy(() => {
      const m = createModel(name);
      if (PARAMS[name] !== undefined) assert.equal(m.numParameters(), PARAMS[name], name);
      m.resetClassifier(4);
      m.eval();
      const x = T.randn([1, 3, 32, 32]);
      const f = T.noGrad(() => m.forwardFeatures(x));
      assert.equal(f.shape[1], m.numFeatures, name);
      assert.deepEqual(T.noGrad(() => m.forwardHead(f, true)).shape, [1, m.numFeatures], name);
      const logits = T.noGrad(() => m.forward(x));
      assert.deepEqual(logits.shape, [1, 4], name);
      if (m.numParameters() < 15e6) {
        const twin = createModel(name, { numClasses: 4 });
        twin.loadStateDict(m.stateDict());
        assert.ok(T.noGrad(() => twin.eval().forward(x)).equal(logits), `${name}: state-dict round trip`);
        twin.dispose();
      }
      m.dispose();
    });
  }
});

test('headless weights load with a fresh classifier; a mis-shaped trunk is refused with every key listed in one error', () => {
  const dir = oracle.dir;
  const logs: string[] = [];
  T.tidy(() => {
    const sd = new Map(
      [...result]
        .filter(([k]) => k.startsWith('after.') && !k.startsWith('after.fc.'))
        .map(([k, t]) => [k.slice(6), t]),
    );
    const src = createModel('resnet50', { numClasses: 0 });
    src.loadStateDict(sd);
    nn.saveWeights(src, join(dir, 'trained.safetensors'));
    src.dispose();
  });
  const model = createModel('resnet50', {
    numClasses: 3,
    pretrained: join(dir, 'trained.safetensors'),
    log: (m) => logs.push(m),
  });
  assert.match(logs[0]!, /loaded 318 tensors .*the file has no classifier \(fc\): classifier initialised fresh/);
  // The oracle's float64 state was stored into a float32 model: the same values, rounded once.
  T.tidy(() =>
    assert.ok(
      model
        .stateDict()
        .get('layer1.0.bn1.running_var')!
        .equal(result.get('after.layer1.0.bn1.running_var')!.to({ dtype: 'float32' })),
    ),
  );
  model.dispose();
  // The same weights into ResNeXt: every mis-shaped conv is named in one error.
  assert.throws(
    () => createModel('resnext50_32x4d', { numClasses: 10, pretrained: join(dir, 'weights.safetensors'), log: null }),
    (e: unknown) =>
      e instanceof nn.StateDictError &&
      e.shapeMismatches.length === 176 &&
      /layer4\.2\.conv2\.weight: checkpoint \[512, 512, 3, 3\], model \[1024, 32, 3, 3\]/.test(e.message),
  );
});
