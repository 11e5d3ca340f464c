// int8 export: BatchNorm folded, QDQ around every convolution, ranges calibrated on training
// photos. The int8 graph must score real photos like the float one (a norm-scaled bound, with a
// negative control showing the bound tells photos apart), and onnxruntime must turn it into
// integer convolutions (QLinearConv), which is where its speed comes from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { processFile } from '../src/data/index.js';
import { evalPipeline } from '../src/run/pipelines.js';
import { calibrationPhotos, exportLoaded, exportLoadedInt8 } from '../src/serve/onnx/export.js';
import {
  activationQParams,
  CALIBRATION_METHODS,
  planQuantization,
  quantizeWeightsPerChannel,
  type Range,
} from '../src/serve/onnx/quantize.js';
import { calibrate, klOfLogits, TensorStats } from '../src/serve/onnx/calibrate.js';
import { GraphBuilder } from '../src/serve/onnx/graph.js';
import { Rng } from '../src/util/rng.js';
import { disposeRecognizer } from '../src/eval/predictor.js';
import { openServedModel, precisionNote, readSidecar } from '../src/serve/model.js';
import { cpuFeatures, cpuHasVnni } from '../src/util/cpu-features.js';
import { evaluateOnnx } from '../src/serve/onnx/evaluate.js';
import { evaluate } from '../src/eval/evaluate.js';
import { loadAlignedSplit } from '../src/eval/align.js';
import { buildServer } from '../src/serve/server.js';
import { SAMPLE, repoRoot, standInRecognizer } from './serve-helpers.js';

const { onnx } = onnxProto;

async function run(path: string, x: Float32Array, n: number, level: 'disabled' | 'extended' | 'all' = 'extended') {
  const s = await ort.InferenceSession.create(path, { graphOptimizationLevel: level, intraOpNumThreads: 1 });
  try {
    const size = SAMPLE.preprocess.size;
    return (await s.run({ input: new ort.Tensor('float32', x, [n, 3, size, size]) })).logits!.data as Float32Array;
  } finally {
    await s.release();
  }
}

/**
 * |a - b| / |a - mean_a|, in float64: the error against the part of the float logits that changes
 * from photo to photo (`mean_a`: each class's mean logit over the photos, which the stand-in
 * model's class biases dominate).
 */
function relErr(a: Float32Array, b: Float32Array, c: number): number {
  const n = a.length / c;
  const mean = new Float64Array(c);
  for (let i = 0; i < a.length; i++) mean[i % c]! += a[i]! / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += (a[i]! - mean[i % c]!) ** 2;
  }
  return Math.sqrt(num / den);
}

test('quantization helpers: per-channel weights and uint8 ranges', () => {
  const w = Float32Array.of(0.5, -1, 0.25, 0.002, -0.001, 0.0005);
  const { q, scales } = quantizeWeightsPerChannel(w, 2);
  assert.deepEqual([...q], [64, -127, 32, 127, -64, 32]);
  assert.ok(Math.abs(scales[0]! - 1 / 127) < 1e-9 && Math.abs(scales[1]! - 0.002 / 127) < 1e-9);
  // Each weight comes back within half a step of its own channel's scale.
  w.forEach((v, i) => assert.ok(Math.abs(q[i]! * scales[Math.floor(i / 3)]! - v) <= scales[Math.floor(i / 3)]! / 2));
  // A Relu output's range starts at 0 with zero point 0 (what lets onnxruntime drop the Relu).
  assert.deepEqual(activationQParams({ min: 0, max: 2.55 }, true), { scale: Math.fround(0.01), zeroPoint: 0 });
  // An asymmetric range keeps 0 exact: zero point = round(-min / scale).
  const p = activationQParams({ min: -1, max: 3 });
  assert.equal(p.zeroPoint, Math.round(1 / p.scale));
});

/** 24 training photos of the embedded sample, class by class, in batches of 8. */
const sampleCalibration = () =>
  calibrationPhotos(join(repoRoot, 'examples', 'grocery-sample'), 'train', SAMPLE.preprocess, 24, 8);

/** Mean squared error, in float64, of the values through the uint8 grid of range r (as the graph quantizes). */
function gridMse(d: Float32Array, r: Range, relu: boolean): number {
  const { scale, zeroPoint } = activationQParams(r, relu);
  let e = 0;
  for (const v of d) {
    const q = Math.min(255, Math.max(0, Math.round(v / scale) + zeroPoint));
    e += ((q - zeroPoint) * scale - v) ** 2;
  }
  return e / d.length;
}

function statsOf(d: Float32Array): TensorStats {
  const s = new TensorStats();
  s.addRange(d);
  s.addHistogram(d);
  return s;
}

test("mse calibration: the range's uint8 grid errs less than min-max's, percentile's and any other tried", () => {
  // Deterministic values (seeded Rng): a Laplace-like body with 3 far outliers; a ReLU-like tensor, 60 % exact zeros, long tail.
  const rng = new Rng(12345);
  const u = (): number => 1 - rng.random(); // (0, 1]: log() stays finite
  const signed = new Float32Array(200_000).map(() => (u() < 0.5 ? -1 : 1.5) * -Math.log(u()));
  for (let i = 0; i < 3; i++) signed[i * 997] = i === 1 ? -60 : 100 + 50 * u();
  const relu = new Float32Array(200_000).map(() => (u() < 0.6 ? 0 : Math.log(u()) ** 2));
  for (const [name, d, isRelu] of [
    ['signed', signed, false],
    ['relu', relu, true],
  ] as const) {
    const s = statsOf(d);
    const mse = s.range('mse', 99.99);
    const e = gridMse(d, mse, isRelu);
    const minmax = gridMse(d, s.range('minmax', 99.99), isRelu);
    const pct = gridMse(d, s.range('percentile', 99.99), isRelu);
    assert.ok(mse.min <= 0 && mse.max >= 0, `${name}: range holds 0`);
    if (isRelu) assert.equal(mse.min, 0, 'a ReLU tensor starts at 0');
    // No worse than the other methods' ranges (0.1 % slack: the search takes a bin's values at its centre) ...
    assert.ok(e <= 1.001 * minmax, `${name}: mse ${e} against min-max ${minmax}`);
    assert.ok(e <= 1.001 * pct, `${name}: mse ${e} against percentile ${pct}`);
    // ... and clearly better than min-max where a few values lie far out (signed: 3 of 200,000).
    if (!isRelu) assert.ok(e < 0.8 * minmax, `${name}: mse ${e} against min-max ${minmax}`);
    // Any other range, shrunk or widened at either end, errs at least as much (1 % slack: bins stand for values).
    for (const f of [0.5, 0.8, 0.9, 1.1, 1.25, 2])
      for (const r of [
        { min: mse.min * f, max: mse.max },
        { min: mse.min, max: mse.max * f },
      ])
        assert.ok(gridMse(d, r, isRelu) >= e * 0.99, `${name}: ${JSON.stringify(r)} beats ${JSON.stringify(mse)}`);
    // Negative control: the check above tells ranges apart (half the range errs clearly more).
    assert.ok(gridMse(d, { min: mse.min / 2, max: mse.max / 2 }, isRelu) > 1.2 * e);
  }
});

test('entropy calibration: exact zeros do not drag the threshold to 0; KL of logits by hand', () => {
  const rng = new Rng(7);
  const u = (): number => 1 - rng.random(); // (0, 1]: log() stays finite
  const relu = new Float32Array(200_000).map(() => (u() < 0.6 ? 0 : -Math.log(u())));
  const s = statsOf(relu);
  const sorted = relu.filter((v) => v > 0).sort();
  const p99 = sorted[Math.floor(0.99 * sorted.length)]!;
  const r = s.range('entropy', 99.99);
  assert.equal(r.min, 0);
  assert.ok(r.max >= p99 && r.max <= s.max, `entropy keeps the body: ${r.max} against the 99th percentile ${p99}`);
  // Negative control: the same histogram with its zeros counted as ordinary values collapses the range.
  s.zeros = 0;
  const collapsed = s.range('entropy', 99.99);
  assert.ok(collapsed.max < p99 / 2, `zeros left in: ${collapsed.max}`);
  // KL(softmax(p) || softmax(q)): (1/2, 1/2) against (1/4, 3/4) is ln(4/3) / 2; a shift of the logits changes nothing.
  const want = Math.log(4 / 3) / 2;
  assert.ok(Math.abs(klOfLogits(Float32Array.of(0, 0), Float32Array.of(0, Math.log(3))) - want) < 1e-7);
  assert.ok(Math.abs(klOfLogits(Float32Array.of(5, 5), Float32Array.of(100, 100 + Math.log(3))) - want) < 1e-6);
  assert.ok(klOfLogits(Float32Array.of(1, 2, 3), Float32Array.of(1, 2, 3)) < 1e-12);
});

test("int8 plan: squeeze-and-excitation's 1 x 1 convs on pooled tensors stay float", () => {
  const g = new GraphBuilder();
  const w = (o: number, i: number, k: number): string =>
    g.initializer(g.fresh('w'), [o, i, k, k], new Float32Array(o * i * k * k).fill(0.1));
  const c1 = g.node('Conv', ['input', w(8, 3, 3)], { pads: [1, 1, 1, 1] });
  const r1 = g.node('Relu', [c1]);
  const pooled = g.node('GlobalAveragePool', [r1]);
  const se1 = g.node('Conv', [pooled, w(2, 8, 1)]);
  const se1a = g.node('Relu', [se1]);
  const se2 = g.node('Conv', [se1a, w(8, 2, 1)]);
  const gate = g.node('Sigmoid', [se2]);
  const scaled = g.node('Mul', [r1, gate]);
  g.node('Conv', [scaled, w(4, 8, 1)], {}, ['logits']);
  const plan = planQuantization(g, new Set(['logits']));
  assert.deepEqual(
    plan.convs.map((n) => n.output![0]),
    [c1, 'logits'],
    'the spatial convs are quantized, the two on the pooled branch are not',
  );
  assert.ok(!plan.tensors.includes(pooled) && !plan.tensors.includes(se1a), 'no QDQ on the pooled branch');
  assert.ok(plan.tensors.includes(scaled), 'the gated map (spatial) is quantized as a conv input');
});

test('calibration: a batch of 24 photos gives the same statistics and reference as three of 8', async () => {
  const g = new GraphBuilder();
  const wData = new Float32Array(4 * 3 * 3 * 3).map((_, i) => Math.sin(i));
  const c = g.node('Conv', ['input', g.initializer('w', [4, 3, 3, 3], wData)], { pads: [1, 1, 1, 1] });
  const r = g.node('Relu', [c]);
  g.node('GlobalAveragePool', [r], {}, ['pooled']);
  const graph = g.encode({
    input: 'input',
    inputDims: [3, 6, 6],
    outputs: [{ name: c }, { name: r }, { name: 'pooled' }],
    producer: 'test',
    producerVersion: '0',
  });
  const data = new Float32Array(24 * 3 * 36).map((_, i) => Math.cos(i * 0.37) * (1 + (i % 7)));
  const whole = [{ data, n: 24 }];
  const thirds = [0, 1, 2].map((k) => ({ data: data.slice(k * 8 * 108, (k + 1) * 8 * 108), n: 8 }));
  const o = { graph, inputName: 'input', inputDims: [3, 6, 6], tensors: ['input', c, r], methods: CALIBRATION_METHODS };
  const a = await calibrate({ ...o, batches: whole, reference: 'pooled' });
  const b = await calibrate({ ...o, batches: thirds, reference: 'pooled' });
  // Equal up to float rounding: onnxruntime may sum a conv differently at another batch size on some CPUs, which
  // can move a value across a histogram bin (one bin = 1/2048 of a tensor's min-max range).
  for (const t of ['input', c, r]) {
    const mm = a.ranges('minmax').get(t)!;
    const bin = (mm.max - mm.min) / 2048;
    for (const m of CALIBRATION_METHODS) {
      const [x, y] = [a.ranges(m).get(t)!, b.ranges(m).get(t)!];
      assert.ok(Math.abs(x.min - y.min) <= 2 * bin && Math.abs(x.max - y.max) <= 2 * bin, `${m} ${t}`);
    }
  }
  const flat = (x: Float32Array[]): number[] => x.flatMap((v) => [...v]);
  const [ra, rb] = [flat(a.reference), flat(b.reference)];
  assert.equal(ra.length, 24 * 4);
  assert.equal(rb.length, 24 * 4);
  const diff = Math.hypot(...ra.map((v, i) => v - rb[i]!));
  assert.ok(diff <= 1e-5 * Math.hypot(...ra), `reference differs by ${diff}`);
  // Negative control: other photos give other ranges.
  const other = await calibrate({ ...o, batches: [{ data: data.map((v) => v * 2), n: 24 }] });
  assert.notDeepEqual(other.ranges('minmax'), a.ranges('minmax'));
});

test("export --int8 --calibration-method auto: each method's divergence recorded, the least kept and true", async () => {
  const work = mkdtempSync(join(tmpdir(), 'goodsrec-int8-auto-'));
  const { recognizer } = await standInRecognizer(work);
  try {
    const batches = await sampleCalibration();
    const fp = exportLoaded(recognizer, { outDir: join(work, 'fp32') });
    const lines: string[] = [];
    const q = await exportLoadedInt8(recognizer, {
      outDir: join(work, 'int8'),
      int8: { batches, method: 'auto', onProgress: (l) => lines.push(l) },
    });
    const cal = q.sidecar.quantization!.calibration;
    const div = cal.auto!.divergence;
    assert.deepEqual(Object.keys(div).sort(), ['entropy', 'minmax', 'mse', 'percentile']);
    for (const v of Object.values(div)) assert.ok(Number.isFinite(v) && v >= 0);
    assert.equal(div[cal.method], Math.min(...Object.values(div)), `kept ${cal.method} of ${JSON.stringify(div)}`);
    assert.match(lines.join('\n'), new RegExp(`auto calibration: .*: ${cal.method}`));
    // The recorded divergence is the written graph's: recomputed from both exports on the same photos.
    const c = SAMPLE.classes.length;
    let sum = 0;
    let shiftedSum = 0;
    let photos = 0;
    for (const b of batches) {
      const a = await run(fp.onnxPath, b.data, b.n);
      const y = await run(q.onnxPath, b.data, b.n, 'all'); // as the server runs it
      for (let i = 0; i < b.n; i++) {
        const j = (i + 1) % b.n;
        sum += klOfLogits(a.subarray(i * c, (i + 1) * c), y.subarray(i * c, (i + 1) * c));
        shiftedSum += klOfLogits(a.subarray(i * c, (i + 1) * c), y.subarray(j * c, (j + 1) * c));
        photos++;
      }
    }
    const mine = sum / photos;
    assert.ok(Math.abs(mine - div[cal.method]) <= 0.02 * div[cal.method] + 1e-9, `${mine} against ${div[cal.method]}`);
    // Negative control: another photo's int8 answers are far from each photo's float ones.
    assert.ok(shiftedSum / photos > 10 * mine, `shifted ${shiftedSum / photos} against ${mine}`);
  } finally {
    disposeRecognizer(recognizer);
    rmSync(work, { recursive: true, force: true });
  }
});

test('export --int8: QDQ graph, BatchNorm folded, logits close to float32 on real photos', async () => {
  const work = mkdtempSync(join(tmpdir(), 'goodsrec-int8-'));
  const { recognizer } = await standInRecognizer(work);
  try {
    const batches = await sampleCalibration();
    assert.equal(
      batches.reduce((a, b) => a + b.n, 0),
      24,
    );
    const fp = exportLoaded(recognizer, { outDir: join(work, 'fp32') });
    const q = await exportLoadedInt8(recognizer, {
      outDir: join(work, 'int8'),
      int8: { batches, method: 'percentile', source: { data: 'sample', split: 'train' } },
    });
    assert.equal(fp.sidecar.precision, 'fp32');
    assert.equal(q.sidecar.precision, 'int8');
    assert.equal(q.sidecar.quantization?.calibration.photos, 24);
    assert.equal(q.sidecar.quantization?.calibration.method, 'percentile');
    // resnet18: 20 convolutions (17 + 3 downsample), each followed by a BatchNorm in the float graph.
    assert.equal(fp.ops.BatchNormalization, 20);
    assert.equal(q.ops.BatchNormalization, undefined, 'every BatchNorm folded');
    assert.equal(q.ops.Conv, 20);
    assert.equal(q.sidecar.quantization?.convs, 20);
    assert.equal(q.sidecar.quantization?.bnFolded, 20);
    assert.ok((q.ops.QuantizeLinear ?? 0) >= 20, `QuantizeLinear: ${q.ops.QuantizeLinear}`);
    // Weight, bias and activation DQ for every conv.
    assert.ok((q.ops.DequantizeLinear ?? 0) >= 60, `DequantizeLinear: ${q.ops.DequantizeLinear}`);
    const model = onnx.ModelProto.decode(readFileSync(q.onnxPath));
    const DT = onnx.TensorProto.DataType;
    const types = model.graph!.initializer!.map((t) => t.dataType);
    assert.equal(types.filter((t) => t === DT.INT8).length, 20 * 2, 'int8 weights and their zero points');
    assert.equal(types.filter((t) => t === DT.INT32).length, 20 * 2, 'int32 biases and their zero points');
    assert.ok(readFileSync(q.onnxPath).length < readFileSync(fp.onnxPath).length / 3, 'weights stored in 8 bits');

    // The server says what it serves.
    const app = await buildServer({ model: await openServedModel(join(work, 'int8'), { threads: 1 }) });
    try {
      const m = (await app.inject({ method: 'GET', url: '/v1/model' })).json() as {
        precision: string;
        quantization: { calibration: { photos: number; method: string } };
      };
      assert.equal(m.precision, 'int8');
      assert.deepEqual(m.quantization.calibration, { ...q.sidecar.quantization!.calibration });
    } finally {
      await app.close();
    }

    // onnxruntime fuses DQ -> Conv [-> Relu] -> Q into integer convolutions.
    const optimized = join(work, 'optimized.onnx');
    const s = await ort.InferenceSession.create(q.onnxPath, {
      graphOptimizationLevel: 'extended',
      optimizedModelFilePath: optimized,
    });
    await s.release();
    const fused = onnx.ModelProto.decode(readFileSync(optimized)).graph!.node!.map((n) => n.opType);
    assert.equal(fused.filter((t) => t === 'QLinearConv').length, 20, `ops after optimization: ${fused.join(' ')}`);
    assert.ok(!fused.includes('Conv'), 'no float convolution left');

    // Real photos (the sample's test split), not seen in calibration.
    const pipe = evalPipeline(SAMPLE.preprocess);
    const imgs = await Promise.all(SAMPLE.photos.map((f) => processFile(f, pipe, 0)));
    const n = imgs.length;
    const per = 3 * SAMPLE.preprocess.size ** 2;
    const x = new Float32Array(n * per);
    imgs.forEach((im, i) => x.set(im.data as Float32Array, i * per));
    const a = await run(fp.onnxPath, x, n);
    const b = await run(q.onnxPath, x, n);
    const c = SAMPLE.classes.length;
    const err = relErr(a, b, c);
    // Negative control: the float logits of the photos in another order (same scale, wrong photos).
    const shifted = new Float32Array(a.length);
    for (let i = 0; i < n; i++) {
      const j = (i + 1) % n;
      shifted.set(a.subarray(j * c, (j + 1) * c), i * c);
    }
    const other = relErr(a, shifted, c);
    console.log(`int8 vs float32: relative error ${err.toFixed(4)}, negative control ${other.toFixed(4)}`);
    assert.ok(err < 0.1, `int8 logits differ from float32 by ${err.toFixed(4)} (relative L2)`);
    assert.ok(other > 3 * 0.1, `the negative control (${other.toFixed(4)}) must exceed the bound 3 times`);
    let agree = 0;
    for (let i = 0; i < n; i++) {
      const arg = (y: Float32Array) => {
        let k = 0;
        for (let j = 1; j < c; j++) if (y[i * c + j]! > y[i * c + k]!) k = j;
        return k;
      };
      if (arg(a) === arg(b)) agree++;
    }
    // The stand-in's classes are near ties on some photos (random trunk, nearest-mean classifier).
    assert.ok(agree >= 0.9 * n, `top-1 agrees on ${agree} of ${n} photos`);
  } finally {
    disposeRecognizer(recognizer);
    rmSync(work, { recursive: true, force: true });
  }
});

test('goodsrec eval on an exported graph: onnxruntime scores the split as the engine does (plain and flip)', async () => {
  const work = mkdtempSync(join(tmpdir(), 'goodsrec-onnx-eval-'));
  const { recognizer, exportDir } = await standInRecognizer(work);
  try {
    const sidecar = readSidecar(join(exportDir, 'model.json'));
    const ds = loadAlignedSplit(join(repoRoot, 'examples', 'grocery-sample'), 'test', sidecar.classes);
    for (const tta of [[], ['flip']] as const) {
      const engine = await evaluate(recognizer.model, ds, evalPipeline(SAMPLE.preprocess), {
        tta: [...tta],
        workers: 0,
      });
      const onnx = await evaluateOnnx(join(exportDir, 'model.onnx'), sidecar, ds, { tta, threads: 1 });
      assert.equal(onnx.metrics.samples, ds.samples.length);
      assert.equal(onnx.metrics.top1, engine.metrics.top1, `tta ${tta.join(',') || 'none'}`);
      assert.ok(Math.abs(onnx.metrics.loss! - engine.metrics.loss!) < 1e-3 * Math.max(1, engine.metrics.loss!));
      const byIndex = new Map(engine.predictions.map((p) => [p.index, p.top[0]]));
      for (const p of onnx.predictions) assert.equal(p.top[0], byIndex.get(p.index), p.path);
    }
    // Negative control: the flip view changes the scores (so the flip test above is not vacuous).
    const plain = await evaluateOnnx(join(exportDir, 'model.onnx'), sidecar, ds, { threads: 1 });
    const flip = await evaluateOnnx(join(exportDir, 'model.onnx'), sidecar, ds, { tta: ['flip'], threads: 1 });
    assert.notEqual(plain.metrics.loss, flip.metrics.loss);
  } finally {
    disposeRecognizer(recognizer);
    rmSync(work, { recursive: true, force: true });
  }
});

test('the server says its precision; an int8 graph on a CPU without VNNI is flagged', () => {
  assert.match(precisionNote('int8', false), /no VNNI.*serve the fp32 export/);
  assert.match(precisionNote('int8', true), /^precision: int8 \(the CPU has VNNI\)$/);
  assert.match(precisionNote('fp32', false), /^precision: fp32 \(the CPU has no VNNI\)$/);
  assert.match(precisionNote('fp32', true), /export --int8/);
  assert.equal(cpuHasVnni({ model: 'x', isa: ['avx2', 'avx512f'] }), false);
  assert.equal(cpuHasVnni({ model: 'x', isa: ['avx2', 'avx_vnni'] }), true);
  assert.equal(cpuHasVnni({ model: 'x', isa: [] }), null);
  const zen4 = cpuFeatures('model name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16\n');
  assert.equal(cpuHasVnni(zen4), true);
});
