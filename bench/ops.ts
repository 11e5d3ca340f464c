// Per-call overhead and a convolution against PyTorch in the same run:
// microseconds per tiny op (1-element add + dispose) and conv2d 3x3
// forward+backward on 32x64x56x56 (64->64 channels, padding 1), same thread
// count on both sides, PyTorch timed inside Python.
import { spawnSync } from 'node:child_process';
import * as T from '../src/tensor/index.js';
import { F } from '../src/tensor/index.js';

const PYTHON = process.env.GOODSREC_ORACLE_PYTHON ?? '/usr/bin/python3';
const TINY_CALLS = 200_000;
const CONV_ITERS = Number(process.env.GOODSREC_BENCH_CONV_ITERS ?? 5);

const PY = `
import json, sys, time, statistics
import torch
import torch.nn.functional as F
threads, tiny_calls, conv_iters = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
a, b = torch.ones(1), torch.ones(1)
for _ in range(10000):
    c = a + b; del c
t0 = time.perf_counter()
for _ in range(tiny_calls):
    c = a + b; del c
tiny_us = (time.perf_counter() - t0) / tiny_calls * 1e6
torch.manual_seed(0)
x = torch.randn(32, 64, 56, 56, requires_grad=True)
w = (torch.randn(64, 64, 3, 3) * 0.05).requires_grad_()
bias = torch.zeros(64, requires_grad=True)
times = []
for i in range(conv_iters + 1):
    t0 = time.perf_counter()
    y = F.conv2d(x, w, bias, padding=1)
    y.sum().backward()
    x.grad = None; w.grad = None; bias.grad = None
    del y
    if i: times.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({"tinyUs": tiny_us, "convMs": min(times), "convMedianMs": statistics.median(times), "torch": torch.__version__}))
`;

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function tinyAdd(): number {
  const a = T.ones([1]);
  const b = T.ones([1]);
  for (let i = 0; i < 10_000; i++) a.add(b).dispose();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < TINY_CALLS; i++) a.add(b).dispose();
  const us = Number(process.hrtime.bigint() - t0) / 1e3 / TINY_CALLS;
  a.dispose();
  b.dispose();
  return us;
}

/** Min and median ms per iteration (min is the robust figure on a shared machine). */
function convFwdBwd(): { min: number; median: number } {
  T.manualSeed(0);
  const x = T.randn([32, 64, 56, 56], { requiresGrad: true });
  const w = T.tidy(() => T.randn([64, 64, 3, 3]).mul(0.05)).setRequiresGrad(true);
  const bias = T.zeros([64], { requiresGrad: true });
  const times: number[] = [];
  for (let i = 0; i <= CONV_ITERS; i++) {
    const t0 = performance.now();
    const loss = T.tidy(() => F.conv2d(x, w, bias, { padding: 1 }).sum());
    loss.backward();
    loss.dispose();
    x.zeroGrad();
    w.zeroGrad();
    bias.zeroGrad();
    if (i) times.push(performance.now() - t0);
  }
  x.dispose();
  w.dispose();
  bias.dispose();
  return { min: Math.min(...times), median: median(times) };
}

export async function run(): Promise<void> {
  const threads = T.getNumThreads();
  const tinyUs = tinyAdd();
  const conv = convFwdBwd();
  const r = spawnSync(PYTHON, ['-c', PY, String(threads), String(TINY_CALLS), String(CONV_ITERS)], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`PyTorch side failed (${PYTHON}): ${r.stderr || r.error?.message}`);
  const torch = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    tinyUs: number;
    convMs: number;
    convMedianMs: number;
    torch: string;
  };
  console.log(
    `threads ${threads}; goodsrec on libtorch ${T.buildInfo().torchVersion}, PyTorch ${torch.torch}; conv: best and median of ${CONV_ITERS}`,
  );
  const rows: [string, number, number, string][] = [
    ['tiny add + dispose (1 element)', tinyUs, torch.tinyUs, 'us/call'],
    ['conv2d 3x3 fwd+bwd 32x64x56x56', conv.min, torch.convMs, 'ms/iter, best'],
    ['  (median)', conv.median, torch.convMedianMs, 'ms/iter, median'],
  ];
  console.log('op'.padEnd(34) + 'goodsrec'.padStart(12) + 'PyTorch'.padStart(12) + '  ratio');
  for (const [name, a, b, unit] of rows) {
    console.log(
      name.padEnd(34) +
        `${a.toFixed(2)}`.padStart(12) +
        `${b.toFixed(2)}`.padStart(12) +
        `  ${(a / b).toFixed(2)}x  (${unit})`,
    );
  }
}
