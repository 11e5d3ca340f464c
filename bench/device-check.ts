/**
 * The numeric steps of scripts/device-check.sh (issue 26 item 4), one per call; each writes its figures as
 * JSON and exits 1 when a bound is broken. The same code runs on a GPU and, in the rehearsal, on the CPU.
 *
 *   node dist/bench/device-check.js ops DEVICE OUT.json
 *     every op case of test/helpers/op-cases.ts on DEVICE against the CPU in float64, with the oracle's bounds
 *   node dist/bench/device-check.js resnet DEVICE OUT.json PYTHON SIZE BATCH
 *     ResNet-50 forward + backward (train mode) against torchvision's on the same device, same weights and batch
 *   node dist/bench/device-check.js amp DEVICE OUT.json SIZE BATCH STEPS
 *     forward/backward of STEPS batches under autocast (fp16 + GradScaler on CUDA, bf16 on the CPU) against fp32
 *   node dist/bench/device-check.js loader DEVICE OUT.json DATA SIZE BATCH BATCHES [TRAIN_STEP.json]
 *     the training loader's images/s against the images/s the train step consumes (from bench train-step)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

type Figures = Record<string, unknown> & { ok: boolean };

/** ||a - b|| / ||b|| in float64 (a and b any device; shapes must match). */
async function relNorm(
  T: typeof import('../src/tensor/index.js'),
  a: import('../src/tensor/index.js').Tensor,
  b: import('../src/tensor/index.js').Tensor,
): Promise<number> {
  if (a.shape.join() !== b.shape.join()) return Number.POSITIVE_INFINITY;
  return T.tidy(() => {
    const x = a.to({ device: 'cpu', dtype: 'float64' });
    const y = b.to({ device: 'cpu', dtype: 'float64' });
    return x.sub(y).norm().item() / Math.max(y.norm().item(), 1e-30);
  });
}

async function ops(device: string): Promise<Figures> {
  const T = await import('../src/tensor/index.js');
  const { OP_CASES } = await import('../test/helpers/op-cases.js');
  const { runOnDevice } = await import('../test/helpers/op-device.js');
  const dev = T.resolveDevice(device);
  const results = runOnDevice(OP_CASES, dev);
  const failed = results.filter((r) => r.problem !== null);
  for (const r of failed) console.log(`  op ${r.name}: ${r.problem}`);
  const worst = results.reduce((m, r) => (r.maxRelError > m.maxRelError ? r : m), results[0]!);
  console.log(
    `op parity on ${dev} against the CPU in float64: ${results.length - failed.length} of ${results.length} cases within the oracle's bounds (largest scaled error ${worst.maxRelError.toExponential(2)} in '${worst.name}')`,
  );
  return {
    ok: failed.length === 0,
    device: dev,
    cases: results.length,
    failed: failed.map((r) => ({ name: r.name, problem: r.problem })),
    worst: { name: worst.name, scaledError: worst.maxRelError },
  };
}

/** Tensors exchanged with bench/resnet_parity_torch.py: one float32/int64 blob and a JSON manifest. */
interface Entry {
  name: string;
  dtype: 'float32' | 'int64';
  shape: number[];
  offset: number;
}

function writeBlob(dir: string, stem: string, tensors: [string, import('../src/tensor/index.js').Tensor][]): void {
  const parts: Buffer[] = [];
  const entries: Entry[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    const c = t.to({ device: 'cpu' }).contiguous();
    const d = c.data() as Float32Array | BigInt64Array;
    const b = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    entries.push({ name, dtype: c.dtype === 'int64' ? 'int64' : 'float32', shape: [...c.shape], offset });
    parts.push(Buffer.from(b));
    offset += b.length;
  }
  writeFileSync(join(dir, `${stem}.bin`), Buffer.concat(parts));
  writeFileSync(join(dir, `${stem}.json`), JSON.stringify(entries));
}

function readBlob(
  T: typeof import('../src/tensor/index.js'),
  dir: string,
  stem: string,
): Map<string, import('../src/tensor/index.js').Tensor> {
  const entries = JSON.parse(readFileSync(join(dir, `${stem}.json`), 'utf8')) as Entry[];
  const data = readFileSync(join(dir, `${stem}.bin`));
  const out = new Map<string, import('../src/tensor/index.js').Tensor>();
  for (const e of entries) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    const ab = data.buffer.slice(data.byteOffset + e.offset, data.byteOffset + e.offset + n * 4);
    out.set(e.name, T.tensor(new Float32Array(ab), e.shape).keep());
  }
  return out;
}

/** Gradients compared: the stem, a middle block, the last conv and the head. */
const GRADS = ['conv1.weight', 'bn1.weight', 'layer2.1.conv2.weight', 'layer4.2.conv3.weight', 'fc.weight', 'fc.bias'];

async function resnet(device: string, python: string, size: number, batch: number): Promise<Figures> {
  const T = await import('../src/tensor/index.js');
  const { createModel } = await import('../src/models/index.js');
  const dev = T.resolveDevice(device);
  const cuda = T.isCuda(dev);
  T.manualSeed(0);
  const model = createModel('resnet50', { numClasses: 10 }).train();
  const dir = mkdtempSync(join(tmpdir(), 'goodsrec-resnet-parity-'));
  try {
    const x = T.randn([batch, 3, size, size]).keep();
    const y = T.randint(0, 10, [batch]).keep();
    T.tidy(() => {
      const sd = [...model.stateDict()].filter(([, t]) => T.isFloating(t.dtype));
      writeBlob(dir, 'in', [...sd, ['x', x]]);
    });
    writeFileSync(join(dir, 'labels.json'), JSON.stringify(Array.from(y.toArray())));
    model.to(dev);
    const t0 = performance.now();
    const mine = T.tidy(() => {
      const logits = model.forward(x.to(dev));
      const loss = T.F.crossEntropy(logits, y.to(dev));
      loss.backward();
      const sd = new Map(model.namedParameters());
      const grads = GRADS.map((n) => sd.get(n)!.grad!.to('cpu').keep());
      return { logits: logits.to('cpu').keep(), loss: loss.item(), grads };
    });
    // The same forward under autocast, as PyTorch's autocast runs it (same weights, same batch).
    const ampDtype = T.autocastDtype(dev);
    const ampLoss = T.tidy(() =>
      T.noGrad(() =>
        T.autocast(T.deviceType(dev), () => T.F.crossEntropy(model.forward(x.to(dev)), y.to(dev)), ampDtype).item(),
      ),
    );
    T.synchronize(dev);
    const ms = performance.now() - t0;
    execFileSync(python, [join(REPO, 'bench', 'resnet_parity_torch.py'), dir, dev], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, PYTHONWARNINGS: 'ignore' },
    });
    const ref = readBlob(T, dir, 'out');
    const refLoss = JSON.parse(readFileSync(join(dir, 'out-loss.json'), 'utf8')) as {
      loss: number;
      ampLoss: number;
      torch: string;
    };
    // fp32 on the CPU: the two sides differ by summation order only. CUDA: cuDNN may run the convolutions in
    // TF32 (10-bit mantissa) on both sides, with algorithms of its choosing (libtorch's and PyTorch's default).
    const bound = cuda ? { logits: 1e-2, grads: 3e-2 } : { logits: 1e-4, grads: 1e-3 };
    const logitsErr = await relNorm(T, mine.logits, ref.get('logits')!);
    // Negative control: the same comparison with PyTorch's rows shifted by one sample must fail clearly.
    const control = await relNorm(
      T,
      mine.logits,
      T.tidy(() => ref.get('logits')!.roll(1, 0).keep()),
    );
    const gradErr = GRADS.map((n, i) => ({ name: n, relNorm: 0, i })).map((g) => g);
    for (const g of gradErr) g.relNorm = await relNorm(T, mine.grads[g.i]!, ref.get(`grad.${g.name}`)!);
    const lossErr = Math.abs(mine.loss - refLoss.loss) / Math.abs(refLoss.loss);
    // AMP against PyTorch's AMP: two eps of the low-precision type (bf16 3.9e-3, fp16 9.8e-4), relative.
    const ampBound = ampDtype === 'bfloat16' ? 8e-3 : 2e-3;
    const ampErr = Math.abs(ampLoss - refLoss.ampLoss) / Math.abs(refLoss.ampLoss);
    const ok =
      logitsErr <= bound.logits &&
      lossErr <= bound.logits &&
      gradErr.every((g) => g.relNorm <= bound.grads) &&
      control > 10 * bound.logits &&
      ampErr <= ampBound;
    console.log(
      `ResNet-50 on ${dev} (batch ${batch}, ${size}px, train mode) against torchvision (torch ${refLoss.torch}): logits ||d||/||ref|| ${logitsErr.toExponential(2)} (bound ${bound.logits}), loss ${mine.loss.toFixed(6)} vs ${refLoss.loss.toFixed(6)}, gradients ${gradErr.map((g) => `${g.name} ${g.relNorm.toExponential(2)}`).join(', ')} (bound ${bound.grads}); control with rows shifted ${control.toExponential(2)}; ${ampDtype} autocast loss ${ampLoss.toFixed(6)} vs PyTorch's ${refLoss.ampLoss.toFixed(6)} (relative ${ampErr.toExponential(2)}, bound ${ampBound}; fp32 ${refLoss.loss.toFixed(6)})`,
    );
    for (const t of [x, y, mine.logits, ...mine.grads, ...ref.values()]) t.dispose();
    return {
      ok,
      device: dev,
      torch: refLoss.torch,
      batch,
      size,
      goodsrecMs: ms,
      bounds: bound,
      logitsRelNorm: logitsErr,
      lossRelError: lossErr,
      grads: Object.fromEntries(gradErr.map((g) => [g.name, g.relNorm])),
      controlShiftedRows: control,
      amp: { dtype: ampDtype, loss: ampLoss, pytorchLoss: refLoss.ampLoss, relError: ampErr, bound: ampBound },
    };
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function amp(device: string, size: number, batch: number, steps: number): Promise<Figures> {
  const T = await import('../src/tensor/index.js');
  const { createModel } = await import('../src/models/index.js');
  const { scaledOptimizerStep } = await import('../src/train/amp-step.js');
  const dev = T.resolveDevice(device);
  const dtype = T.autocastDtype(dev);
  // The same weights (a seeded ResNet-50 in train mode) and `steps` batches: each runs under autocast (with the
  // GradScaler on float16: scaled backward, unscale, inf/NaN check) and in fp32. The weights do not move:
  // after even one SGD step at lr 1e-4 a random-init ResNet-50 on a tiny batch is so sensitive (its fp32 loss
  // moves by 10 %) that the comparison measured that sensitivity, not the precision (the bf16 difference
  // varied 4-7 % between runs at step 2, 1.2-1.4 % at the initial weights).
  T.manualSeed(1);
  const model = createModel('resnet50', { numClasses: 10 }).train();
  model.to(dev);
  const params = model.parameters();
  const opt = { zeroGrad: () => params.forEach((p) => p.zeroGrad()) };
  T.manualSeed(0);
  const batches = Array.from({ length: steps }, () => ({
    x: T.randn([batch, 3, size, size]).to(dev).keep(),
    y: T.randint(0, 10, [batch]).to(dev).keep(),
  }));
  let x = batches[0]!.x;
  let y = batches[0]!.y;
  const scaler = dtype === 'float16' ? new T.GradScaler() : null;
  const noStep = { step: () => {} };
  const fp32Losses: number[] = [];
  const ampLosses: number[] = [];
  const gradRel: number[] = [];
  let ampLogitsDtype = '';
  let skipped = 0;
  const lossOf = (precision: 'fp32' | 'amp'): number =>
    T.tidy(() => {
      const forward = () => {
        const logits = model.forward(x);
        if (precision === 'amp') ampLogitsDtype = logits.dtype;
        return T.F.crossEntropy(logits, y);
      };
      const loss = precision === 'amp' ? T.autocast(T.deviceType(dev), forward, dtype) : forward();
      (precision === 'amp' && scaler ? scaler.scaleLoss(loss) : loss).backward();
      return loss.item();
    });
  for (let i = 0; i < steps; i++) {
    ({ x, y } = batches[i]!);
    opt.zeroGrad();
    ampLosses.push(lossOf('amp'));
    if (!scaledOptimizerStep(noStep, params, scaler)) skipped++;
    const ampGrads = params.map((p) => (p.grad ? p.grad.clone().keep() : null));
    opt.zeroGrad();
    fp32Losses.push(lossOf('fp32'));
    gradRel.push(
      T.tidy(() => {
        let d = 0;
        let n = 0;
        params.forEach((p, j) => {
          const g = p.grad;
          const a = ampGrads[j];
          if (!g || !a) return;
          d += a
            .to({ dtype: 'float64' })
            .sub(g.to({ dtype: 'float64' }))
            .square()
            .sum()
            .item();
          n += g.to({ dtype: 'float64' }).square().sum().item();
        });
        return Math.sqrt(d / n);
      }),
    );
    for (const a of ampGrads) a?.dispose();
  }
  model.dispose();
  for (const b of batches) {
    b.x.dispose();
    b.y.dispose();
  }
  // bf16 keeps 8 mantissa bits (eps 3.9e-3), fp16 11 (9.8e-4). A random-init ResNet-50 in train mode on a
  // batch of 4 amplifies them: 1.2-5.2 % (up to ~13 bf16 eps) on the rehearsal's 3 batches; the resnet step
  // checks that goodsrec's autocast loss equals PyTorch's on the same weights and batch. Bounds of ~20 eps. The gradients are recorded, not bounded: a random-init ResNet-50's are
  // dominated by its BatchNorm layers and differ by ~130 % under bf16 in PyTorch 2.14 as in goodsrec (batch 4-16).
  const bound = { loss: dtype === 'bfloat16' ? 8e-2 : 2e-2 };
  const rel = ampLosses.map((l, i) => Math.abs(l - fp32Losses[i]!) / Math.abs(fp32Losses[i]!));
  const ok = rel.every((r) => r <= bound.loss) && ampLogitsDtype === dtype && skipped < steps;
  console.log(
    `AMP ${dtype} on ${dev} (${steps} batches, the same weights, batch ${batch}, ${size}px): losses ${ampLosses.map((l) => l.toFixed(4)).join(' ')} against fp32 ${fp32Losses.map((l) => l.toFixed(4)).join(' ')}; largest relative difference ${Math.max(...rel).toExponential(2)} (bound ${bound.loss}); gradients ||d||/||fp32|| ${gradRel.map((g) => g.toExponential(2)).join(' ')} (recorded); logits ${ampLogitsDtype}${scaler ? `; GradScaler scale ${scaler.scale}, ${skipped} steps skipped` : ''}`,
  );
  return {
    ok,
    device: dev,
    dtype,
    steps,
    batch,
    size,
    fp32Losses,
    ampLosses,
    lossRelDifferences: rel,
    gradRelNorms: gradRel,
    bounds: bound,
    ampLogitsDtype,
    gradScaler: scaler ? { scale: scaler.scale, skipped } : null,
  };
}

async function loader(
  device: string,
  data: string,
  size: number,
  batch: number,
  batches: number,
  trainStepJson: string | undefined,
): Promise<Figures> {
  const { resolveConfig, optionLayer } = await import('../src/run/config.js');
  const { configNormalization } = await import('../src/run/pipelines.js');
  const { prepareDataset, createTrainLoader } = await import('../src/train/data-setup.js');
  const c = resolveConfig([
    optionLayer('device-check', 'data.root', resolve(data)),
    optionLayer('device-check', 'input.size', size),
    optionLayer('device-check', 'batchSize', batch),
  ]);
  const { train } = prepareDataset(c);
  const dl = createTrainLoader(c, train, configNormalization(c), null);
  // The first batch pays for starting the workers; time the next `batches`, across epochs as training does.
  let n = 0;
  let images = 0;
  let t0 = 0;
  try {
    outer: for (;;) {
      for await (const b of dl.iterateEpoch()) {
        if (n === 0) t0 = performance.now();
        else images += b.labels.length;
        if (++n > batches) break outer;
      }
    }
  } finally {
    await dl.close();
  }
  const loaderIps = (images / (performance.now() - t0)) * 1000;
  // What the step consumes: the fastest goodsrec row of bench train-step at this batch and size.
  let stepIps: number | null = null;
  let stepRow: unknown = null;
  if (trainStepJson && existsSync(trainStepJson)) {
    const j = JSON.parse(readFileSync(trainStepJson, 'utf8')) as {
      rows: { goodsrecMs: number; [k: string]: unknown }[];
    };
    const best = j.rows.reduce<(typeof j.rows)[number] | null>(
      (m, r) => (m && m.goodsrecMs <= r.goodsrecMs ? m : r),
      null,
    );
    if (best) {
      stepIps = (batch / best.goodsrecMs) * 1000;
      stepRow = best;
    }
  }
  const keepsUp = stepIps === null ? null : loaderIps >= stepIps;
  console.log(
    `loader on ${device === 'cpu' ? 'the CPU' : `the host of ${device}`}: ${loaderIps.toFixed(1)} images/s (${c.data.workers > 0 ? c.data.workers : 'all cores as'} workers, ${size}px, batch ${batch}, ${batches} batches)` +
      (stepIps === null
        ? '; no train-step figure to compare with'
        : `; the step consumes ${stepIps.toFixed(1)} images/s: the loader ${keepsUp ? 'keeps up' : `does NOT keep up (${(loaderIps / stepIps).toFixed(2)}x)`}`),
  );
  // A loader slower than the step is a finding, not a failure of the check.
  return {
    ok: images > 0,
    device,
    size,
    batch,
    batches,
    loaderImagesPerSecond: loaderIps,
    stepImagesPerSecond: stepIps,
    keepsUp,
    stepRow,
  };
}

const [what, device = 'cpu', out, ...rest] = process.argv.slice(2);
if (!what || !out) {
  console.error('usage: node dist/bench/device-check.js ops|resnet|amp|loader DEVICE OUT.json [...]');
  process.exit(2);
}
const t0 = performance.now();
let r: Figures;
if (what === 'ops') r = await ops(device);
else if (what === 'resnet') r = await resnet(device, rest[0] ?? 'python3', Number(rest[1] ?? 64), Number(rest[2] ?? 2));
else if (what === 'amp') r = await amp(device, Number(rest[0] ?? 64), Number(rest[1] ?? 4), Number(rest[2] ?? 3));
else if (what === 'loader')
  r = await loader(
    device,
    rest[0] ?? 'examples/grocery-sample',
    Number(rest[1] ?? 64),
    Number(rest[2] ?? 16),
    Number(rest[3] ?? 8),
    rest[4],
  );
else {
  console.error(`device-check: unknown step '${what}'`);
  process.exit(2);
}
r.seconds = (performance.now() - t0) / 1000;
writeFileSync(out, `${JSON.stringify(r, null, 2)}\n`);
process.exit(r.ok ? 0 : 1);
