// FixRes: only the classifier may change; the trunk's weights and every
// BatchNorm statistic stay bit-identical; the saved run evaluates as reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { readSafetensorsSync } from '../src/io/index.js';
import { loadDataset, selectSplits } from '../src/data/index.js';
import { fixres, freezeTrunk } from '../src/train/fixres.js';
import { createModel } from '../src/models/index.js';
import { loadRecognizer } from '../src/eval/predictor.js';
import { evaluate } from '../src/eval/evaluate.js';
import { evalPipeline } from '../src/run/pipelines.js';
import { makeRun, sample, repoRoot } from './fixres-helpers.js';

const work = mkdtempSync(join(tmpdir(), 'goodsrec-fixres-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
T.setNumThreads(1);

const bytes = (file: string): Map<string, Buffer> =>
  new Map([...readSafetensorsSync(file)].map(([k, t]) => [k, Buffer.from(t.data)]));

test('fixres sweep: trunk and BN statistics bit-identical, classifier trained, best size saved and reproducible', async () => {
  const run = join(work, 'src');
  await makeRun(run, { size: 32 });
  const out = join(work, 'fx');
  const res = await fixres({
    run,
    sizes: [32, 40],
    epochs: 3,
    lr: 0.01,
    batchSize: 32,
    workers: 1,
    flip: true,
    candidates: 'fine-tuned',
    out,
  });
  assert.deepEqual(res.trained, ['fc.weight', 'fc.bias']);
  assert.equal(res.sizes.length, 2);
  const tops = res.sizes.map((s) => s.after!.top1);
  assert.equal(res.best.top1, Math.max(...tops));
  assert.equal(res.best.size, res.sizes[tops.indexOf(Math.max(...tops))]!.size);

  const before = bytes(join(run, 'checkpoints', 'epoch-0001', 'model.safetensors'));
  const after = bytes(join(res.checkpointDir, 'model.safetensors'));
  assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort());
  let bnStats = 0;
  for (const [k, b] of before) {
    if (k.startsWith('fc.')) continue;
    assert.ok(b.equals(after.get(k)!), `${k} changed`);
    if (/running_(mean|var)|num_batches_tracked/.test(k)) bnStats++;
  }
  assert.ok(bnStats >= 40, `BN statistics compared: ${bnStats}`);
  // The classifier changed for real, not by a rounding error.
  const w0 = new Float32Array(new Uint8Array(before.get('fc.weight')!).buffer);
  const w1 = new Float32Array(new Uint8Array(after.get('fc.weight')!).buffer);
  let maxDiff = 0;
  for (let i = 0; i < w0.length; i++) maxDiff = Math.max(maxDiff, Math.abs(w0[i]! - w1[i]!));
  assert.ok(maxDiff > 1e-4, `fc.weight max change ${maxDiff}`);

  // A run folder like a training run's: the new size in preprocess.json, and eval reproduces the reported top-1.
  const pre = JSON.parse(readFileSync(join(out, 'preprocess.json'), 'utf8')) as { size: number };
  assert.equal(pre.size, res.best.size);
  const r = loadRecognizer(out);
  const ds = selectSplits(loadDataset(sample), 'test');
  const ev = await evaluate(r.model, ds, evalPipeline(r.preprocess), { workers: 1, keepTopK: 0 });
  r.model.dispose();
  assert.equal(ev.metrics.samples, 60);
  assert.equal(ev.metrics.top1, res.best.top1);
  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string });
  assert.equal(lines.filter((l) => l.type === 'fixres-size').length, 2);
  assert.equal(lines.filter((l) => l.type === 'epoch').length, 3);
});

test('freezeTrunk: only the classifier keeps requiresGrad; every module (BatchNorm too) in eval mode', () => {
  const m = createModel('resnet18', { numClasses: 6, log: null });
  try {
    m.train();
    assert.deepEqual(freezeTrunk(m), ['fc.weight', 'fc.bias']);
    const trainable = m
      .namedParameters()
      .filter(([, p]) => p.requiresGrad)
      .map(([n]) => n);
    assert.deepEqual(trainable, ['fc.weight', 'fc.bias']);
    assert.ok(m.namedParameters().length > 50);
    assert.ok(m.modules().every((x) => !x.training));
  } finally {
    m.dispose();
  }
});

test('fixres: class-balanced re-training changes only the classifier; bad input gets clear errors', async () => {
  const run = join(work, 'src2');
  await makeRun(run, { size: 32, seed: 3 });
  const res = await fixres({
    run,
    sizes: [36],
    epochs: 1,
    lr: 0.01,
    batchSize: 32,
    workers: 1,
    classBalanced: true,
    candidates: 'fine-tuned',
    out: join(work, 'cb'),
  });
  const before = bytes(join(run, 'checkpoints', 'epoch-0001', 'model.safetensors'));
  const after = bytes(join(res.checkpointDir, 'model.safetensors'));
  const changed = [...before].filter(([k, b]) => !b.equals(after.get(k)!)).map(([k]) => k);
  assert.deepEqual(changed.sort(), ['fc.bias', 'fc.weight']);
  // By default the validation split chooses among every size as it is and fine-tuned.
  const res2 = await fixres({
    run,
    sizes: [36, 40],
    epochs: 1,
    lr: 0.01,
    batchSize: 32,
    workers: 1,
    out: join(work, 'cb2'),
  });
  const all = res2.sizes.flatMap((s) => [s.before.top1, s.after!.top1]);
  assert.equal(res2.best.top1, Math.max(...all));
  await assert.rejects(fixres({ run, sizes: [36], epochs: 1, out: join(work, 'cb') }), /already holds a run/);
  await assert.rejects(fixres({ run, sizes: [8], epochs: 1, out: join(work, 'x') }), /integers >= 16/);
  await assert.rejects(
    fixres({ run, sizes: [36], epochs: 1, valSplit: 'nope', out: join(work, 'y') }),
    /validation split 'nope' has no images/,
  );
});

test('goodsrec fixres CLI: --sizes sweep with --epochs 0 evaluates only and writes a run eval accepts', async () => {
  const run = join(work, 'cli-src');
  await makeRun(run, { size: 32, seed: 4 });
  const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
  const out = join(work, 'cli-fx');
  const r = spawnSync(
    process.execPath,
    [
      cli,
      'fixres',
      run,
      '--sizes',
      '32,40',
      '--epochs',
      '0',
      '--threads',
      '1',
      '--workers',
      '1',
      '--out',
      out,
      '--json',
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout) as {
    sizes: { size: number; before: { top1: number }; after: null }[];
    best: { size: number; top1: number; fineTuned: boolean };
  };
  assert.deepEqual(
    res.sizes.map((s) => s.size),
    [32, 40],
  );
  assert.ok(res.sizes.every((s) => s.after === null));
  assert.equal(res.best.fineTuned, false);
  assert.equal(res.best.top1, Math.max(...res.sizes.map((s) => s.before.top1)));
  // Without fine-tuning the weights are the source's, byte for byte.
  const changed = [...bytes(join(run, 'checkpoints', 'epoch-0001', 'model.safetensors'))].filter(
    ([k, b]) => !b.equals(bytes(join(out, 'checkpoints', `fixres-${res.best.size}`, 'model.safetensors')).get(k)!),
  );
  assert.deepEqual(changed, []);
  const ev = spawnSync(process.execPath, [cli, 'eval', out, '--out', join(work, 'cli-eval.json')], {
    encoding: 'utf8',
  });
  assert.equal(ev.status, 0, ev.stderr);
  assert.ok(existsSync(join(work, 'cli-eval.json')));
  const bad = spawnSync(process.execPath, [cli, 'fixres', run, '--epochs', '1'], { encoding: 'utf8' });
  assert.equal(bad.status, 2); // a usage error
  assert.match(bad.stderr, /give the test resolution: --size 280/);
});
