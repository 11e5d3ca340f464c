// ONNX export: every registered model, traced from its own forward, gives the
// engine's logits under onnxruntime-node on real photos, with a dynamic batch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import * as T from '../src/tensor/index.js';
import { setCallHook } from '../src/tensor/native.js';
import { createModel, listModels, IMAGENET_MEAN, IMAGENET_STD } from '../src/models/index.js';
import { Module } from '../src/nn/module.js';
import { Conv2d } from '../src/nn/layers/conv.js';
import { BatchNorm2d } from '../src/nn/layers/norm.js';
import { processFile } from '../src/data/index.js';
import { predictFiles, type LoadedRecognizer } from '../src/eval/predictor.js';
import { evalPipeline } from '../src/run/pipelines.js';
import { exportLoaded, exportModel } from '../src/serve/onnx/export.js';
import { UnsupportedOpError } from '../src/serve/onnx/trace.js';

const root = resolve(import.meta.dirname, '..', '..');
const sampleTest = join(root, 'examples', 'grocery-sample', 'test');
/** Candidate test resolutions: each model is checked at the smallest one its forward accepts. */
const SIZES = [64, 96, 128, 160, 224, 299];

function smallestSize(model: Module): number {
  for (const s of SIZES) {
    try {
      T.tidy(() => T.noGrad(() => model.forward(T.zeros([1, 3, s, s]))));
      return s;
    } catch {
      // too small for this architecture: try the next size
    }
  }
  throw new Error(`no test size in ${SIZES.join(', ')} works`);
}

/** Three real photos from different classes, through the evaluation pipeline. */
async function photos(SIZE: number): Promise<{ data: Float32Array; n: number }> {
  const classes = readdirSync(sampleTest).sort().slice(0, 3);
  const files = classes.map((c) => join(sampleTest, c, readdirSync(join(sampleTest, c)).sort()[0]!));
  const pipe = evalPipeline({
    size: SIZE,
    resize: 'letterbox',
    cropPct: 0.875,
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
  });
  const imgs = await Promise.all(files.map((f) => processFile(f, pipe, 0)));
  const data = new Float32Array(imgs.length * 3 * SIZE * SIZE);
  imgs.forEach((im, i) => data.set(im.data as Float32Array, i * 3 * SIZE * SIZE));
  return { data, n: imgs.length };
}

/** Non-trivial BN statistics and affine terms, so a wrong BN mapping cannot pass. */
function randomizeNorms(m: Module, seed: number): void {
  T.manualSeed(seed);
  T.noGrad(() => {
    for (const mod of m.modules()) {
      if (!(mod instanceof BatchNorm2d)) continue;
      mod.running_mean?.copy_(T.tidy(() => T.randn(mod.running_mean!.shape).mul(0.1)));
      mod.running_var?.copy_(T.tidy(() => T.rand(mod.running_var!.shape).add(0.5)));
      mod.weight?.copy_(T.tidy(() => T.rand(mod.weight!.shape).mul(0.5).add(0.5)));
      mod.bias?.copy_(T.tidy(() => T.randn(mod.bias!.shape).mul(0.1)));
    }
  });
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0,
    m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

const models = listModels();

test('the zoo is not empty (every registered model is checked below)', () => {
  assert.ok(models.length >= 6, `registered: ${models.join(', ')}`);
  assert.ok(models.includes('resnet50'));
});

for (const name of models) {
  test(`${name}: onnxruntime logits match the engine within 1e-4 relative on photos (smallest working size), batch 3 and 1`, async () => {
    const model = createModel(name, { numClasses: 6, log: null });
    try {
      randomizeNorms(model, 1);
      model.eval();
      const SIZE = smallestSize(model);
      const { data, n } = await photos(SIZE);
      const e = exportModel(model, { size: SIZE });
      assert.deepEqual(e.input.dims, [3, SIZE, SIZE]);
      assert.deepEqual(e.output.dims, [6]);
      const ref = T.tidy(() => T.noGrad(() => model.forward(T.tensor(data, [n, 3, SIZE, SIZE])).data<'float32'>()));
      // Graph optimisations off: the graph as written must compute the engine's function (and loads faster).
      const session = await ort.InferenceSession.create(e.bytes, { graphOptimizationLevel: 'disabled' });
      try {
        // Traced with batch 2: batch 3 and batch 1 exercise the symbolic batch dimension.
        const r3 = await session.run({ [e.input.name]: new ort.Tensor('float32', data, [n, 3, SIZE, SIZE]) });
        const got = r3[e.output.name]!;
        assert.deepEqual(got.dims, [n, 6]);
        const rel = maxRelDiff(got.data as Float32Array, ref);
        assert.ok(rel < 1e-4, `${name}: max relative difference ${rel}`);
        const one = data.subarray(0, 3 * SIZE * SIZE);
        const r1 = await session.run({ [e.input.name]: new ort.Tensor('float32', one, [1, 3, SIZE, SIZE]) });
        assert.ok(maxRelDiff(r1[e.output.name]!.data as Float32Array, ref.subarray(0, 6)) < 1e-4);
      } finally {
        await session.release();
      }
    } finally {
      model.dispose();
    }
  });
}

class Unmapped extends Module {
  readonly conv = new Conv2d(3, 4, 3);
  override forward(x: T.Tensor): T.Tensor {
    const y = this.conv.forward(x);
    const z = y.cumsum(1); // no ONNX mapping
    y.dispose();
    return z;
  }
}

test('an op without an ONNX mapping is named with its module; the hook and forwards are restored', () => {
  const m = new Unmapped();
  m.eval();
  assert.throws(
    () => exportModel(m, { size: 8 }),
    (e: unknown) => {
      assert.ok(e instanceof UnsupportedOpError);
      assert.equal(e.op, 'cumsum');
      assert.match(e.message, /'cumsum'.*'<root>' \(Unmapped\)/);
      return true;
    },
  );
  // Also when the model is wrapped for test-time views.
  assert.throws(() => exportModel(m, { size: 8, tta: ['flip'] }), /'cumsum' in module '<root>' \(Unmapped\)/);
  assert.equal(setCallHook(null), null, 'no hook left installed');
  assert.ok(!Object.hasOwn(m.conv, 'forward'), 'forward wrappers removed');
  m.dispose();
});

test('a model in training mode exports its eval graph (BN running stats) and stays in training mode', () => {
  const m = new BatchNormOnly();
  m.train();
  const e = exportModel(m, { size: 4 });
  assert.ok(m.training);
  assert.equal(e.ops.BatchNormalization, 1);
  m.dispose();
});

class BatchNormOnly extends Module {
  readonly bn = new BatchNorm2d(3);
  override forward(x: T.Tensor): T.Tensor {
    return this.bn.forward(x).flatten(1);
  }
}

test('test-time views and an ensemble are traced into one graph that scores like predictFiles', async () => {
  const preprocess = { size: 64, resize: 'letterbox' as const, cropPct: 0.875, mean: IMAGENET_MEAN, std: IMAGENET_STD };
  const classes = ['a', 'b', 'c', 'd', 'e', 'f'];
  const member = (name: string, seed: number): LoadedRecognizer => {
    T.manualSeed(seed);
    const model = createModel(name, { numClasses: 6, log: null });
    randomizeNorms(model, seed);
    model.eval();
    return {
      model,
      modelName: name,
      classes,
      preprocess,
      device: 'cpu',
      checkpointDir: `m${seed}`,
      runDir: undefined,
      ema: false,
    };
  };
  const members = [member('resnet18', 3), member('resnet34', 4)];
  const r: LoadedRecognizer = {
    ...members[0]!,
    modelName: 'ensemble',
    checkpointDir: 'ensemble.json',
    ensemble: {
      path: 'ensemble.json',
      members,
      weights: [0.25, 0.75],
      mean: 'probs',
      tta: ['flip', 'zoom'],
      ttaMean: 'logits',
    },
  };
  const dir = mkdtempSync(join(tmpdir(), 'goodsrec-export-ens-'));
  try {
    const out = exportLoaded(r, { outDir: dir });
    assert.deepEqual(out.sidecar.tta, ['flip', 'zoom']);
    assert.deepEqual(
      out.sidecar.members.map((m) => m.weight),
      [0.25, 0.75],
    );
    assert.ok(out.ops.Resize && out.ops.Slice, 'zoom (Resize) and flip (Slice) are in the graph');
    const files = readdirSync(sampleTest)
      .sort()
      .map((c) => join(sampleTest, c, readdirSync(join(sampleTest, c)).sort()[1]!));
    const expected = await predictFiles(r, files, { topK: 6 });
    const pipe = evalPipeline(preprocess);
    const imgs = await Promise.all(files.map((f) => processFile(f, pipe, 0)));
    const x = new Float32Array(files.length * 3 * 64 * 64);
    imgs.forEach((im, i) => x.set(im.data as Float32Array, i * 3 * 64 * 64));
    const session = await ort.InferenceSession.create(readFileSync(out.onnxPath), {
      graphOptimizationLevel: 'disabled',
    });
    try {
      const y = (await session.run({ input: new ort.Tensor('float32', x, [files.length, 3, 64, 64]) })).logits!
        .data as Float32Array;
      files.forEach((f, i) => {
        const row = y.subarray(i * 6, (i + 1) * 6);
        const m = Math.max(...row);
        const z = row.reduce((a, v) => a + Math.exp(v - m), 0);
        for (const t of expected[i]!.top) {
          const p = Math.exp(row[t.index]! - m) / z;
          assert.ok(
            Math.abs(p - t.probability) < 1e-4,
            `${f} class ${t.class}: onnx ${p} vs predictFiles ${t.probability}`,
          );
        }
      });
    } finally {
      await session.release();
    }
  } finally {
    for (const m of members) m.model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
