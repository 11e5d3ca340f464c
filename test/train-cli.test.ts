// End to end through the CLI on the embedded sample: train, eval, predict;
// exact resume after SIGKILL; SIGTERM after the run folder was moved; a failed
// checkpoint write keeps the previous one; a diverging loss stops the run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readSafetensorsSync } from '../src/io/index.js';
import { loadCheckpoint } from '../src/run/checkpoint.js';
import { cpuFeatures, cpuHasNativeBf16 } from '../src/util/cpu-features.js';
import { chooseAmp } from '../src/train/amp-choice.js';

const root = resolve(import.meta.dirname, '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const sample = join(root, 'examples', 'grocery-sample');
const work = mkdtempSync(join(tmpdir(), 'goodsrec-train-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

// Small and quick: resnet18 at 32 px on half the sample (72 images, 9 steps of 8).
const tiny = [
  '--data',
  sample,
  '--model',
  'resnet18',
  '--size',
  '32',
  '--batch-size',
  '8',
  '--epochs',
  '2',
  '--set',
  'data.fraction=0.5',
  '--set',
  'augment.cutout=4',
  '--set',
  'threads=2',
  '--set',
  'data.workers=1',
];

function run(
  args: string[],
  env: Record<string, string> = {},
): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, CI: '1', ...env },
    timeout: 300_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tensorsOf(file: string): Map<string, Buffer> {
  const m = readSafetensorsSync(file);
  return new Map([...m].map(([k, t]) => [k, Buffer.from(t.data)]));
}

test('train 2 epochs, then eval and predict the run', async () => {
  const r = run(['train', ...tiny, '--out', work, '--name', 'basic']);
  assert.equal(r.code, 0, r.stderr);
  const dir = join(work, 'basic');
  for (const f of [
    'config.json',
    'classes.json',
    'preprocess.json',
    'versions.json',
    'metrics.jsonl',
    'latest.json',
    'best.json',
  ]) {
    assert.ok(existsSync(join(dir, f)), `${f} written`);
  }
  const epochs = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; val?: { top1: number } })
    .filter((m) => m.type === 'epoch');
  assert.equal(epochs.length, 2);
  assert.ok(epochs.every((e) => e.val && e.val.top1 >= 0 && e.val.top1 <= 1));
  const classes = JSON.parse(readFileSync(join(dir, 'classes.json'), 'utf8')) as string[];
  assert.equal(classes.length, 6);

  const ev = run(['eval', dir, '--split', 'test', '--out', join(work, 'eval.json')]);
  assert.equal(ev.code, 0, ev.stderr);
  const e = JSON.parse(readFileSync(join(work, 'eval.json'), 'utf8')) as {
    metrics: { samples: number; top1: number; perClass: { support: number }[]; confusion: number[][] };
    predictions: { index: number }[];
  };
  // Every test image exactly once: 6 classes x 10, no partial batch dropped (batch 32 does not divide 60).
  assert.equal(e.metrics.samples, 60);
  assert.deepEqual(
    e.metrics.perClass.map((p) => p.support),
    [10, 10, 10, 10, 10, 10],
  );
  assert.equal(new Set(e.predictions.map((p) => p.index)).size, 60);
  assert.equal(
    e.metrics.confusion.flat().reduce((a, b) => a + b, 0),
    60,
  );
  assert.match(ev.stdout, /top-1\s+\d+\.\d+%/);

  const img = join(sample, 'test', 'Oatly-Oat-Milk');
  const pr = run(['predict', dir, img, '--top', '3', '--json']);
  assert.equal(pr.code, 0, pr.stderr);
  const preds = JSON.parse(pr.stdout) as { path: string; top: { class: string; probability: number }[] }[];
  assert.equal(preds.length, readdirSync(img).length);
  for (const p of preds) {
    assert.equal(p.top.length, 3);
    assert.ok(p.top.every((t) => classes.includes(t.class)));
    assert.ok(p.top[0]!.probability >= p.top[1]!.probability && p.top[1]!.probability >= p.top[2]!.probability);
    assert.ok(p.top.reduce((a, t) => a + t.probability, 0) <= 1 + 1e-6);
  }
  const bad = run(['predict', dir, join(work, 'missing.jpg')]);
  assert.equal(bad.code, 3);
  assert.match(bad.stdout, /missing\.jpg\n {2}error: missing \(no such file or folder\)/);
  // eval, predict, FixRes and gallery embedding resolve --device through the device module: CUDA where it
  // cannot be used is a usage error (exit 2, one sentence) before any work; on a GPU they run there.
  const { cuda } = await import('../src/tensor/index.js');
  if (cuda.deviceCount() === 0) {
    for (const args of [
      ['eval', dir, '--split', 'test', '--device', 'cuda'],
      ['predict', dir, img, '--device', 'cuda:0'],
      ['fixres', dir, '--size', '40', '--device', 'cuda'],
      ['gallery', 'build', dir, '--data', sample, '--out', join(work, 'g.gallery'), '--device', 'cuda'],
    ]) {
      const d = run(args);
      assert.equal(d.code, 2, `${args.slice(0, 2).join(' ')}: ${d.stderr}`);
      assert.match(d.stderr.trim(), /^goodsrec: device cuda(:0)?: [^\n]*(without CUDA|0 devices)[^\n]*$/, args[0]);
    }
    assert.ok(!existsSync(join(work, 'g.gallery')));
  }
});

test("serve --device: libtorch rows (logits, embedding) equal onnxruntime's for the same batch; CUDA without a GPU exits 2", async () => {
  const dir = join(work, 'basic');
  assert.ok(existsSync(dir), 'needs the run of the first test');
  const T = await import('../src/tensor/index.js');
  const { openServedModel } = await import('../src/serve/model.js');
  const { openTorchServedModel } = await import('../src/serve/torch-model.js');
  const ort = await openServedModel(dir, { threads: 2, embedding: true });
  const lt = await openTorchServedModel(dir, { embedding: true, device: 'cpu' });
  try {
    assert.equal(lt.itemSize, ort.itemSize);
    assert.equal(lt.embeddingDim, ort.embeddingDim);
    assert.ok(lt.embeddingDim > 0);
    T.manualSeed(3);
    const n = 3;
    const x = T.tidy(() =>
      T.randn([n * ort.itemSize])
        .data<'float32'>()
        .slice(),
    );
    const other = T.tidy(() =>
      T.randn([n * ort.itemSize])
        .data<'float32'>()
        .slice(),
    );
    const a = await lt.run(x.slice(), n);
    const b = await ort.run(x.slice(), n);
    const c = await lt.run(other, n);
    assert.equal(a.length, n * (6 + lt.embeddingDim)); // 6 classes in the sample
    const rel = (u: Float32Array, v: Float32Array): number => {
      let d = 0;
      let m = 0;
      for (let i = 0; i < v.length; i++) {
        d += (u[i]! - v[i]!) ** 2;
        m += v[i]! ** 2;
      }
      return Math.sqrt(d / m);
    };
    // float32 through two engines: summation order only (norm-scaled); another batch is far (the control).
    assert.ok(rel(a, b) < 1e-4, `libtorch vs onnxruntime ${rel(a, b)}`);
    assert.ok(rel(c, b) > 1e-2, `another batch ${rel(c, b)}`);
  } finally {
    await lt.release();
    await ort.release();
  }
  if (T.cuda.deviceCount() > 0) {
    // On a GPU: the same rows from CUDA (cuDNN may convolve in TF32: a 1e-2 norm-scaled bound).
    const ort2 = await openServedModel(dir, { threads: 2 });
    const gpu = await openTorchServedModel(dir, { device: 'cuda' });
    try {
      T.manualSeed(4);
      const x = T.tidy(() =>
        T.randn([2 * ort2.itemSize])
          .data<'float32'>()
          .slice(),
      );
      const a = await gpu.run(x.slice(), 2);
      const b = await ort2.run(x.slice(), 2);
      const d = Math.hypot(...a.map((v, i) => v - b[i]!)) / Math.hypot(...b);
      assert.ok(d < 1e-2, `CUDA vs onnxruntime ${d}`);
    } finally {
      await gpu.release();
      await ort2.release();
    }
  } else {
    const d = run(['serve', dir, '--device', 'cuda', '--port', '0']);
    assert.equal(d.code, 2, d.stderr);
    assert.match(d.stderr.trim(), /^goodsrec: device cuda: [^\n]*(without CUDA|0 devices)[^\n]*$/);
  }
});

test('bad options give clear errors', () => {
  const r = run(['train', '--data', sample, '--set', 'optim.lrr=0.1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option 'optim\.lrr'/);
  const r2 = run(['train', '--data', sample, '--epochs', '0']);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /schedule\.epochs\): expected an integer >= 1/);
  const r3 = run(['train', '--data', join(work, 'nope')]);
  assert.equal(r3.code, 2);
  assert.match(r3.stderr, /not found/);
});

function waitFor(cond: () => boolean, child: ChildProcess, timeoutMs: number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const t0 = Date.now();
    const timer = setInterval(() => {
      if (cond()) {
        clearInterval(timer);
        resolvePromise();
      } else if (Date.now() - t0 > timeoutMs || child.exitCode !== null) {
        clearInterval(timer);
        reject(new Error('condition not reached'));
      }
    }, 50);
  });
}

test('a run killed with SIGKILL mid-epoch resumes to the same weights', async () => {
  const common = [...tiny, '--out', work, '--set', 'checkpointEverySteps=2', '--seed', '3'];
  const a = run(['train', ...common, '--name', 'straight']);
  assert.equal(a.code, 0, a.stderr);

  const child = spawn(process.execPath, [cli, 'train', ...common, '--name', 'killed'], {
    env: { ...process.env, CI: '1' },
    stdio: 'ignore',
  });
  const latest = join(work, 'killed', 'latest.json');
  // Kill once a mid-epoch checkpoint of the second epoch exists.
  await waitFor(
    () => {
      if (!existsSync(latest)) return false;
      const p = (JSON.parse(readFileSync(latest, 'utf8')) as { position: { epoch: number; step: number } }).position;
      return p.epoch === 1 && p.step >= 2;
    },
    child,
    240_000,
  );
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const killedAt = (JSON.parse(readFileSync(latest, 'utf8')) as { checkpoint: string }).checkpoint;
  assert.match(killedAt, /^epoch-0001-step-\d+$/);

  const b = run(['train', '--resume', join(work, 'killed')]);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stderr + b.stdout, /resumed from .* at epoch 2, step \d+/);

  const wa = tensorsOf(join(work, 'straight', 'checkpoints', 'epoch-0002', 'model.safetensors'));
  const wb = tensorsOf(join(work, 'killed', 'checkpoints', 'epoch-0002', 'model.safetensors'));
  assert.deepEqual([...wa.keys()], [...wb.keys()]);
  for (const [k, v] of wa) assert.ok(v.equals(wb.get(k)!), `${k} differs after resume`);
  const oa = tensorsOf(join(work, 'straight', 'checkpoints', 'epoch-0002', 'optimizer.safetensors'));
  const ob = tensorsOf(join(work, 'killed', 'checkpoints', 'epoch-0002', 'optimizer.safetensors'));
  for (const [k, v] of oa) assert.ok(v.equals(ob.get(k)!), `optimizer ${k} differs after resume`);
});

test('SIGTERM after the run folder was moved: the stop checkpoint lands in the moved folder, which resumes', async () => {
  const threeEpochs = tiny.map((a, i) => (tiny[i - 1] === '--epochs' ? '3' : a));
  const dir = join(work, 'moving');
  const moved = join(work, 'moved-away');
  const child = spawn(process.execPath, [cli, 'train', ...threeEpochs, '--out', work, '--name', 'moving'], {
    env: { ...process.env, CI: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let signalled = false;
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const onData = (d: Buffer): void => {
    out += String(d);
    // After the first epoch (the epoch-end checkpoint may be being written right now): move, then stop.
    if (!signalled && /^epoch 1: /m.test(out)) {
      signalled = true;
      renameSync(dir, moved);
      child.kill('SIGTERM');
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const code = await exited;
  assert.ok(signalled, out);
  assert.equal(code, 130, out);
  // Before: the stop checkpoint, latest.json and best.json re-created the old path as a second, partial folder.
  assert.ok(!existsSync(dir), `nothing at the old path: ${existsSync(dir) ? readdirSync(dir).join(', ') : ''}`);
  assert.match(out, /run folder moved: .*moving -> .*moved-away/);
  assert.match(out, new RegExp(`continue with --resume ${moved}`));
  const latest = (JSON.parse(readFileSync(join(moved, 'latest.json'), 'utf8')) as { checkpoint: string }).checkpoint;
  assert.ok(loadCheckpoint(join(moved, 'checkpoints', latest)).model.size > 0);
  const r = run(['train', '--resume', moved]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr + r.stdout, /resumed from .*moved-away/);
  assert.ok(existsSync(join(moved, 'checkpoints', 'epoch-0003', 'model.safetensors')));
  assert.ok(!existsSync(dir));
});

test('a checkpoint that cannot be written (disk full) keeps the previous one', (t) => {
  const mnt = join(work, 'small-disk');
  mkdirSync(mnt, { recursive: true });
  // A real full disk: a tmpfs with room for one checkpoint (~90 MB for resnet18) but not two.
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=150m', 'tmpfs', mnt]);
  if (m.status !== 0) {
    t.skip('cannot mount a tmpfs here (needs root): not checked');
    return;
  }
  try {
    const r = run(['train', ...tiny, '--out', mnt, '--name', 'full', '--set', 'checkpointEvery=1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /checkpoint epoch-0002 could not be saved: .*disk full/);
    assert.match(r.stderr, /the last saved checkpoint is .*epoch-0001/);
    const dir = join(mnt, 'full');
    const pointer = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')) as { checkpoint: string };
    assert.equal(pointer.checkpoint, 'epoch-0001');
    const ck = loadCheckpoint(join(dir, 'checkpoints', 'epoch-0001'));
    assert.ok(ck.model.size > 0);
    assert.deepEqual(readdirSync(join(dir, 'checkpoints')), ['epoch-0001']);
  } finally {
    spawnSync('umount', [mnt]);
  }
});

test('a diverging loss stops the run and names the last good checkpoint', () => {
  const r = run(['train', ...tiny, '--out', work, '--name', 'nan', '--lr', '1e12', '--set', 'checkpointEverySteps=1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /loss became (NaN|Infinity|-Infinity) at epoch \d+, step \d+: stopping/);
  assert.match(r.stderr, /last good checkpoint is .*nan\/checkpoints\/epoch-/);
  const latest = JSON.parse(readFileSync(join(work, 'nan', 'latest.json'), 'utf8')) as { checkpoint: string };
  const w = readSafetensorsSync(join(work, 'nan', 'checkpoints', latest.checkpoint, 'model.safetensors'));
  for (const [k, t] of w) {
    if (t.dtype !== 'float32') continue;
    const f = new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
    assert.ok(f.every(Number.isFinite), `${k} of the kept checkpoint is finite`);
  }
});

test('EMA, gradient accumulation, class-balanced sampling and bf16 autocast run end to end', () => {
  const oneEpoch = tiny.map((a, i) => (tiny[i - 1] === '--epochs' ? '1' : a));
  const r = run([
    'train',
    ...oneEpoch,
    '--out',
    work,
    '--name',
    'options',
    '--amp',
    'bf16',
    '--set',
    'ema=0.9',
    '--set',
    'accumulate=2',
    '--set',
    'classBalanced=true',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const dir = join(work, 'options');
  const latest = (JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')) as { checkpoint: string }).checkpoint;
  const ck = loadCheckpoint(join(dir, 'checkpoints', latest));
  assert.ok(ck.ema, 'EMA weights saved');
  // EMA weights are a running average, so they differ from the trained weights.
  const w = ck.model.get('conv1.weight')!.data;
  const e = ck.ema!.get('conv1.weight')!.data;
  assert.equal(w.length, e.length);
  assert.ok(!Buffer.from(w).equals(Buffer.from(e)));
  // Autocast makes activations bf16, never the weights the optimizer updates (fp32 master weights):
  // every floating tensor saved from a bf16 run is float32.
  const floating = [...ck.model, ...ck.ema!].filter(([, t]) => t.dtype !== 'int64');
  assert.ok(floating.length > 100, `${floating.length} floating tensors`);
  for (const [k, t] of floating) assert.equal(t.dtype, 'float32', k);
  // 9 batches with accumulation 2: 5 optimizer steps (the last one on a single batch).
  const state = ck.state as { globalStep: number };
  assert.equal(state.globalStep, 5);
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as {
    amp: string;
    ema: number;
    accumulate: number;
    classBalanced: boolean;
  };
  assert.deepEqual([cfg.amp, cfg.ema, cfg.accumulate, cfg.classBalanced], ['bf16', 0.9, 2, true]);
  // bf16 without AVX512-BF16/AMX is emulated (slower than fp32): the run says so, and only then.
  const native = cpuHasNativeBf16();
  const warned = /bf16 convolutions and matmuls are emulated/.test(r.stderr);
  if (native !== null) assert.equal(warned, !native, `native bf16 ${native}; stderr: ${r.stderr.slice(-500)}`);
  // The CPU is recorded with the run: a speed figure is a fact about one CPU kind.
  const v = JSON.parse(readFileSync(join(dir, 'versions.json'), 'utf8')) as {
    cpu: { model: string; isa: string[] };
    amp: { amp: string; requested: string; reason: string };
  };
  assert.deepEqual(v.cpu, cpuFeatures());
  // The precision chosen is printed at start and recorded: here asked for explicitly.
  assert.deepEqual(v.amp, { amp: 'bf16', requested: 'bf16', reason: 'set in the config' });
  assert.match(r.stderr, /amp: bf16 \(set in the config\)/);
});

test("amp 'auto': bf16 on CPUs with native bf16, fp32 on the others, fp16 on CUDA; the reason names the CPU", () => {
  const zen3 = cpuFeatures('model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n');
  const zen4 = cpuFeatures('model name\t: AMD EPYC 9B14\nflags\t\t: avx2 avx512f avx512_vnni avx512_bf16\n');
  const spr = cpuFeatures('model name\t: Intel Xeon 8480+\nflags\t\t: avx2 avx512f amx_tile amx_bf16\n');
  const unknown = cpuFeatures('');
  assert.equal(chooseAmp('auto', 'cpu', zen4).amp, 'bf16');
  assert.match(chooseAmp('auto', 'cpu', zen4).reason, /AMD EPYC 9B14 has avx512_bf16/);
  assert.equal(chooseAmp('auto', 'cpu', spr).amp, 'bf16');
  assert.equal(chooseAmp('auto', 'cpu', zen3).amp, 'off');
  assert.match(chooseAmp('auto', 'cpu', zen3).reason, /AMD EPYC 7B13 has neither AVX512-BF16 nor AMX/);
  assert.equal(chooseAmp('auto', 'cpu', unknown).amp, 'off');
  assert.equal(chooseAmp('auto', 'cuda', zen3).amp, 'fp16');
  assert.equal(chooseAmp('auto', 'cuda:1', zen4).amp, 'fp16');
  // An explicit choice is kept whatever the CPU; fp16 on CPU is an error naming the alternatives.
  assert.equal(chooseAmp('bf16', 'cpu', zen3).amp, 'bf16');
  assert.equal(chooseAmp('off', 'cpu', zen4).amp, 'off');
  assert.throws(() => chooseAmp('fp16', 'cpu', zen4), /needs a CUDA device; on CPU use 'bf16' or 'off'/);
});

test('cpu features: model and kernel flags from /proc/cpuinfo text; native bf16 needs AVX512-BF16 or AMX', () => {
  const zen3 = 'processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n';
  const spr = 'model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: avx2 avx512f avx512_bf16 amx_tile amx_bf16\n';
  assert.deepEqual(cpuFeatures(zen3), { model: 'AMD EPYC 7B13', isa: ['avx2'] });
  assert.equal(cpuHasNativeBf16(cpuFeatures(zen3)), false);
  assert.deepEqual(cpuFeatures(spr).isa, ['avx2', 'avx512f', 'avx512_bf16', 'amx_tile', 'amx_bf16']);
  assert.equal(cpuHasNativeBf16(cpuFeatures(spr)), true);
  assert.deepEqual(cpuFeatures('no cpuinfo here'), { model: 'unknown CPU', isa: [] });
  assert.equal(cpuHasNativeBf16(cpuFeatures('')), null);
});
