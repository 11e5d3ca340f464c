/**
 * `npm run bench -- models`: inference and training throughput (images/s) of every registered
 * model at 224x224, batch 16, 1000 classes, goodsrec next to its torchvision twin (where one
 * exists) measured in the same run, one model after the other, with the ratio goodsrec/PyTorch.
 * Inference: eval-mode forward without gradients. Training: forward, cross entropy, backward,
 * SGD momentum step. When a warm-up step takes longer than GOODSREC_BENCH_SLOW_MS, one timed
 * step is taken instead of GOODSREC_BENCH_STEPS.
 *
 * Env: GOODSREC_BENCH_MODELS (comma-separated globs, default every model), GOODSREC_BENCH_STEPS
 * (default 3), GOODSREC_BENCH_WARMUP (default 1), GOODSREC_BENCH_BATCH (default 16),
 * GOODSREC_BENCH_SIZE (default 224), GOODSREC_BENCH_SLOW_MS (default 8000).
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../src/tensor/index.js';
import { createModel, listModels } from '../src/models/index.js';
import { SGD } from '../src/optim/index.js';

const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

/** Our name -> torchvision.models name, for the models that have a torchvision twin. */
export const TORCHVISION_TWINS: Readonly<Record<string, string>> = {
  resnet18: 'resnet18',
  resnet34: 'resnet34',
  resnet50: 'resnet50',
  resnet101: 'resnet101',
  resnet152: 'resnet152',
  resnext50_32x4d: 'resnext50_32x4d',
  ...Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`efficientnet_b${i}`, `efficientnet_b${i}`])),
  swin_tiny_patch4_window7_224: 'swin_t',
};

interface Times {
  infer_ms: number[];
  train_ms: number[];
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function timed(fn: () => void, steps: number, warmup: number, slowMs: number): number[] {
  const times: number[] = [];
  for (let i = 0; i < warmup + steps && times.length < steps; i++) {
    const t = performance.now();
    fn();
    const ms = performance.now() - t;
    if (i >= warmup) times.push(ms);
    else if (ms > slowMs) steps = 1;
  }
  return times;
}

function goodsrec(name: string, batch: number, size: number, steps: number, warmup: number, slowMs: number): Times {
  T.manualSeed(0);
  const model = createModel(name, { numClasses: 1000, log: null });
  const x = T.randn([batch, 3, size, size]).keep();
  const y = T.randint(0, 1000, [batch]).keep();
  try {
    model.eval();
    const infer = timed(
      () =>
        T.tidy(() => {
          T.noGrad(() => model.forward(x));
        }),
      steps,
      warmup,
      slowMs,
    );
    model.train();
    const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
    const train = timed(
      () => {
        opt.zeroGrad();
        T.tidy(() => T.F.crossEntropy(model.forward(x), y).backward());
        opt.step();
      },
      steps,
      warmup,
      slowMs,
    );
    opt.dispose();
    return { infer_ms: infer, train_ms: train };
  } finally {
    x.dispose();
    y.dispose();
    model.dispose();
  }
}

function pytorch(
  twin: string,
  batch: number,
  size: number,
  steps: number,
  warmup: number,
  slowMs: number,
  threads: number,
): Times {
  const out = execFileSync(
    '/usr/bin/python3',
    [
      join(REPO, 'bench', 'models_torch.py'),
      twin,
      String(batch),
      String(size),
      String(steps),
      String(warmup),
      String(threads),
      String(slowMs),
    ],
    { encoding: 'utf8', env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return JSON.parse(out.trim().split('\n').pop()!) as Times;
}

export async function run(): Promise<void> {
  const env = process.env;
  const batch = Number(env['GOODSREC_BENCH_BATCH'] ?? 16);
  const size = Number(env['GOODSREC_BENCH_SIZE'] ?? 224);
  const steps = Number(env['GOODSREC_BENCH_STEPS'] ?? 3);
  const warmup = Number(env['GOODSREC_BENCH_WARMUP'] ?? 1);
  const slowMs = Number(env['GOODSREC_BENCH_SLOW_MS'] ?? 8000);
  const threads = T.getNumThreads();
  const globs = (env['GOODSREC_BENCH_MODELS'] ?? '*')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const names = [...new Set(globs.flatMap((g) => listModels(g)))].sort();
  if (names.length === 0)
    throw new Error(
      `GOODSREC_BENCH_MODELS=${env['GOODSREC_BENCH_MODELS']} matches no registered model (see goodsrec models)`,
    );
  console.log(
    `models bench: batch ${batch}, 3x${size}x${size}, 1000 classes, ${threads} threads, up to ${steps} timed steps after ${warmup} warm-up ` +
      `(1 when a warm-up step exceeds ${slowMs} ms); images/s from the median step; load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  const ips = (ms: number[]): number => (batch * 1000) / median(ms);
  const fmt = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(1)).padStart(8);
  const w = Math.max(...names.map((n) => n.length));
  console.log(
    `${'model'.padEnd(w)}  ${'infer gr'.padStart(8)} ${'infer pt'.padStart(8)} ${'ratio'.padStart(6)}  ${'train gr'.padStart(8)} ${'train pt'.padStart(8)} ${'ratio'.padStart(6)}  (images/s)`,
  );
  for (const name of names) {
    const g = goodsrec(name, batch, size, steps, warmup, slowMs);
    const twin = TORCHVISION_TWINS[name];
    const p = twin ? pytorch(twin, batch, size, steps, warmup, slowMs, threads) : undefined;
    const gi = ips(g.infer_ms),
      gt = ips(g.train_ms);
    const pi = p ? ips(p.infer_ms) : undefined,
      pt = p ? ips(p.train_ms) : undefined;
    const ratio = (a: number, b: number | undefined): string =>
      (b === undefined ? '-' : (a / b).toFixed(3)).padStart(6);
    console.log(
      `${name.padEnd(w)}  ${fmt(gi)} ${fmt(pi)} ${ratio(gi, pi)}  ${fmt(gt)} ${fmt(pt)} ${ratio(gt, pt)}${twin ? `  (twin torchvision ${twin})` : '  (no torchvision twin)'}`,
    );
  }
  console.log(
    `load average at end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}
