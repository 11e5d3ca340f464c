// Ensembles, test-time views and checkpoint averaging on the embedded sample:
// the ensemble's scores are the weighted mean of the members' scores computed
// separately, each member with its own architecture and pre-processing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { readSafetensorsSync } from '../src/io/index.js';
import { loadDataset, selectSplits } from '../src/data/index.js';
import { createModel } from '../src/models/index.js';
import { evaluate, batchLogits } from '../src/eval/evaluate.js';
import { evaluateEnsemble, writeEnsemble, combineScores } from '../src/eval/ensemble.js';
import { averageCheckpoints } from '../src/run/average.js';
import { loadRecognizer, predictFiles, disposeRecognizer } from '../src/eval/predictor.js';
import { softmaxRow } from '../src/eval/metrics.js';
import { evalPipeline } from '../src/run/pipelines.js';
import { makeRun, sample, repoRoot } from './fixres-helpers.js';

const work = mkdtempSync(join(tmpdir(), 'goodsrec-ens-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
T.setNumThreads(1);
const runA = join(work, 'a');
const runB = join(work, 'b');
const ready = (async () => {
  await makeRun(runA, { model: 'resnet18', size: 32, seed: 1 });
  await makeRun(runB, { model: 'resnet34', size: 40, seed: 2, resize: 'squash' });
})();
const testSplit = () => selectSplits(loadDataset(sample), 'test');

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, what);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  assert.ok(worst <= tol, `${what}: max difference ${worst}`);
}

test('ensemble logits = weighted mean of the members evaluated separately (different architectures and pre-processing)', async () => {
  await ready;
  const ds = testSplit();
  const a = loadRecognizer(runA);
  const b = loadRecognizer(runB);
  try {
    const la = (await evaluate(a.model, ds, evalPipeline(a.preprocess), { workers: 1, keepTopK: 0, keepLogits: true }))
      .logits!;
    const lb = (await evaluate(b.model, ds, evalPipeline(b.preprocess), { workers: 1, keepTopK: 0, keepLogits: true }))
      .logits!;
    assert.equal(la.length, 60 * 6);
    const res = await evaluateEnsemble([a, b], ds, { weights: [1, 3], mean: 'logits', workers: 1 });
    const expected = la.map((v, i) => (v + 3 * lb[i]!) / 4);
    close(res.ensemble.logits, expected, 1e-5, 'ensemble logits');
    // Its top-1 is the accuracy of those mean logits; each member is reported as well.
    let correct = 0;
    ds.samples.forEach((s, i) => {
      const row = expected.subarray(i * 6, i * 6 + 6);
      if (row.indexOf(Math.max(...row)) === s.label) correct++;
    });
    assert.equal(res.ensemble.metrics.top1, correct / 60);
    assert.equal(res.members.length, 2);
    assert.deepEqual(
      res.members.map((m) => m.weight),
      [0.25, 0.75],
    );
    // Probability averaging: softmax of the result is the mean probability.
    const rp = await evaluateEnsemble([a, b], ds, { mean: 'probs', workers: 1 });
    for (const i of [0, 17, 59]) {
      const pa = softmaxRow(la.subarray(i * 6, i * 6 + 6));
      const pb = softmaxRow(lb.subarray(i * 6, i * 6 + 6));
      close(
        softmaxRow(rp.ensemble.logits.subarray(i * 6, i * 6 + 6)),
        pa.map((v, j) => (v + pb[j]!) / 2),
        1e-6,
        `mean probs row ${i}`,
      );
    }
    await assert.rejects(evaluateEnsemble([a, b], ds, { weights: [1] }), /1 weight\(s\) for 2 member\(s\)/);
  } finally {
    a.model.dispose();
    b.model.dispose();
  }
});

test('a saved ensemble predicts the weighted mean; the CLI evaluates, saves and predicts with it', async () => {
  await ready;
  const ens = join(work, 'ens.json');
  writeEnsemble(ens, {
    members: [
      { run: 'a', checkpoint: 'a/checkpoints/epoch-0001', weight: 2 },
      { run: 'b', checkpoint: 'b/checkpoints/epoch-0001', weight: 1 },
    ],
    mean: 'logits',
  });
  const dir = join(sample, 'test', 'Arla-Standard-Milk');
  const files = readdirSync(dir)
    .slice(0, 4)
    .map((f) => join(dir, f));
  assert.throws(() => loadRecognizer(ens), /an ensemble file; this command takes a single run/);
  const e = loadRecognizer(ens, { allowEnsemble: true });
  const a = loadRecognizer(runA);
  const b = loadRecognizer(runB);
  try {
    assert.equal(e.ensemble!.members.length, 2);
    const [pe, pa, pb] = [
      await predictFiles(e, files, { topK: 6 }),
      await predictFiles(a, files, { topK: 6 }),
      await predictFiles(b, files, { topK: 6 }),
    ];
    for (let i = 0; i < files.length; i++) {
      // softmax(sum w log p_m) = softmax(sum w logits_m): per-member constants cancel.
      const logp = (p: (typeof pa)[number]) => {
        const v = new Float32Array(6);
        for (const t of p.top) v[t.index] = Math.log(t.probability);
        return v;
      };
      const want = softmaxRow(combineScores([logp(pa[i]!), logp(pb[i]!)], [2 / 3, 1 / 3], 6, 'logits'));
      const got = new Float64Array(6);
      for (const t of pe[i]!.top) got[t.index] = t.probability;
      close(got, want, 1e-5, files[i]!);
    }
  } finally {
    disposeRecognizer(e);
    disposeRecognizer(a);
    disposeRecognizer(b);
  }
  const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
  const saved = join(work, 'cli-ens.json');
  const r = spawnSync(
    process.execPath,
    [cli, 'ensemble', runA, runB, '--weights', '2,1', '--save', saved, '--out', join(work, 'ens-eval.json'), '--json'],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { members: { top1: number }[]; ensemble: { top1: number } };
  assert.equal(out.members.length, 2);
  assert.ok(out.ensemble.top1 >= 0 && out.ensemble.top1 <= 1);
  const p = spawnSync(process.execPath, [cli, 'predict', saved, files[0]!, '--json', '--top', '2'], {
    encoding: 'utf8',
  });
  assert.equal(p.status, 0, p.stderr);
  assert.equal((JSON.parse(p.stdout) as { top: unknown[] }[])[0]!.top.length, 2);
});

test('TTA views: flip is the mean of plain and flipped logits; probs mode averages probabilities', () => {
  T.manualSeed(5);
  const m = createModel('resnet18', { numClasses: 6, log: null });
  m.eval();
  try {
    T.tidy(() => {
      const x = T.randn([2, 3, 32, 32]);
      const plain = T.noGrad(() => m.forward(x)).data<'float32'>();
      const flipped = T.noGrad(() => m.forward(x.flip(3))).data<'float32'>();
      close(
        batchLogits(m, x, ['flip']).data<'float32'>(),
        plain.map((v, i) => (v + flipped[i]!) / 2),
        1e-5,
        'flip logits',
      );
      const pr = batchLogits(m, x, ['flip'], 'probs').data<'float32'>();
      for (let r = 0; r < 2; r++) {
        const p1 = softmaxRow(plain.subarray(r * 6, r * 6 + 6));
        const p2 = softmaxRow(flipped.subarray(r * 6, r * 6 + 6));
        close(
          softmaxRow(pr.subarray(r * 6, r * 6 + 6)),
          p1.map((v, j) => (v + p2[j]!) / 2),
          1e-6,
          'flip probs',
        );
      }
      // zoom is a different view of the same size: changes the scores, keeps the shape.
      const z = batchLogits(m, x, ['zoom']).data<'float32'>();
      assert.equal(z.length, plain.length);
      assert.ok(z.some((v, i) => Math.abs(v - plain[i]!) > 1e-6));
    });
  } finally {
    m.dispose();
  }
});

test('average: the last k checkpoints of a run, float tensors averaged, integer buffers from the newest', async () => {
  const run = join(work, 'avg');
  await makeRun(run, { checkpoints: 3, seed: 7 });
  const res = await averageCheckpoints(run, 2);
  assert.deepEqual(
    res.from.map((f) => f.split('/').pop()),
    ['epoch-0002', 'epoch-0003'],
  );
  const c2 = readSafetensorsSync(join(run, 'checkpoints', 'epoch-0002', 'model.safetensors'));
  const c3 = readSafetensorsSync(join(run, 'checkpoints', 'epoch-0003', 'model.safetensors'));
  const avg = readSafetensorsSync(join(res.dir, 'model.safetensors'));
  assert.equal(avg.size, c3.size);
  const f32 = (t: { data: Uint8Array }) => new Float32Array(new Uint8Array(t.data).buffer);
  for (const k of ['conv1.weight', 'fc.weight', 'layer4.1.bn2.running_var']) {
    close(
      f32(avg.get(k)!),
      f32(c2.get(k)!).map((v, i) => (v + f32(c3.get(k)!)[i]!) / 2),
      1e-6,
      k,
    );
  }
  assert.ok(
    Buffer.from(avg.get('bn1.num_batches_tracked')!.data).equals(Buffer.from(c3.get('bn1.num_batches_tracked')!.data)),
  );
  const r = loadRecognizer(res.dir);
  assert.equal(r.checkpointDir, res.dir);
  r.model.dispose();
  await assert.rejects(averageCheckpoints(run, 5), /3 checkpoint\(s\) kept, fewer than --last 5/);
});
