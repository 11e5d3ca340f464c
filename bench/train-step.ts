/**
 * `npm run bench -- train-step`: one ResNet-50 training step (batch 32, 3x160x160, 1000 classes,
 * forward + cross entropy with label smoothing 0.1 + backward + SGD momentum 0.9, wd 1e-4) on all
 * cores, goodsrec vs PyTorch 1.13 measured in the same run, NCHW and channels_last. Each side runs
 * in its own process (goodsrec in a child node process) so that each peak RSS is its own.
 *
 * Env: GOODSREC_BENCH_SIZE (input side, default 160), GOODSREC_BENCH_STEPS (timed steps per process, default 5), GOODSREC_BENCH_WARMUP (default 2),
 * GOODSREC_BENCH_ROUNDS (processes per side and format, alternating, default 2), GOODSREC_BENCH_AMP ('off' default,
 * 'bf16': the step under bf16 autocast on both sides, 'both': fp32 and bf16), GOODSREC_BENCH_FORMATS (default
 * 'nchw,channels_last'), GOODSREC_BENCH_PYTHON (the PyTorch side's interpreter, default /usr/bin/python3, e.g. the
 * venv of scripts/setup-cuda.sh: torch 2.14.1 + torchvision 0.29.1), GOODSREC_NATIVE (the goodsrec side's addon, e.g.
 * build-cuda/'s). GOODSREC_BENCH_DEVICE ('cpu' default, or 'cuda': both sides on the GPU, timed after a synchronize;
 * GOODSREC_BENCH_AMP may then be 'fp16', autocast with a GradScaler on both sides), GOODSREC_BENCH_BATCH (default 32),
 * GOODSREC_BENCH_JSON (a file the summary rows are written to, for scripts/device-check.sh).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { resolve, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineLine } from './machine.js';

const HERE = fileURLToPath(import.meta.url);
const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

type Format = 'nchw' | 'channels_last';
type Precision = 'fp32' | 'bf16' | 'fp16';
type BenchDevice = 'cpu' | 'cuda';
/** Per timed step: wall ms, process CPU ms (user + system) and minor page faults; peak RSS of the process. */
interface Sample {
  times_ms: number[];
  cpu_ms: number[];
  faults: number[];
  peak_rss_mb: number;
  loss: number;
  minor_faults: number;
}

/** Input side in pixels (GOODSREC_BENCH_SIZE, default 160); the PyTorch side reads the same variable. */
function benchSize(): number {
  const v = Number(process.env['GOODSREC_BENCH_SIZE'] ?? 160);
  if (!Number.isInteger(v) || v < 32)
    throw new Error(`GOODSREC_BENCH_SIZE=${process.env['GOODSREC_BENCH_SIZE']}: expected an integer >= 32`);
  return v;
}

function benchBatch(): number {
  const v = Number(process.env['GOODSREC_BENCH_BATCH'] ?? 32);
  if (!Number.isInteger(v) || v < 1)
    throw new Error(`GOODSREC_BENCH_BATCH=${process.env['GOODSREC_BENCH_BATCH']}: expected an integer >= 1`);
  return v;
}

/** The goodsrec side, in the child process. */
async function child(
  format: Format,
  precision: Precision,
  steps: number,
  warmup: number,
  device: BenchDevice,
): Promise<void> {
  const T = await import('../src/tensor/index.js');
  const { createModel } = await import('../src/models/index.js');
  const { SGD } = await import('../src/optim/index.js');
  T.manualSeed(0);
  const dev = T.resolveDevice(device);
  if (T.isCuda(dev)) T.cuda.setCudnnBenchmark(true);
  const model = createModel('resnet50', { numClasses: 1000 }).train();
  model.to(dev);
  let x = T.randn([benchBatch(), 3, benchSize(), benchSize()]).to(dev).keep();
  const y = T.randint(0, 1000, [benchBatch()]).to(dev).keep();
  const scaler = precision === 'fp16' ? new T.GradScaler() : null;
  const params = model.parameters();
  if (format === 'channels_last') {
    model.to('channelsLast');
    const cl = x.contiguous('channelsLast').keep();
    x.dispose();
    x = cl;
  }
  const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 });
  const times: number[] = [],
    cpu: number[] = [],
    faults: number[] = [];
  let loss = 0;
  for (let i = 0; i < warmup + steps; i++) {
    const t = performance.now();
    const ru0 = process.resourceUsage();
    opt.zeroGrad();
    loss = T.tidy(() => {
      const forward = () => T.F.crossEntropy(model.forward(x), y, { labelSmoothing: 0.1 });
      const l =
        precision === 'fp32'
          ? forward()
          : T.autocast(T.deviceType(dev), forward, precision === 'bf16' ? 'bfloat16' : 'float16');
      (scaler ? scaler.scaleLoss(l) : l).backward();
      return l.item();
    });
    // fp16: unscale, and skip the step on inf/NaN gradients (PyTorch's scaler.step + update).
    const finite = scaler ? scaler.unscaleAndUpdate(params.flatMap((p) => (p.grad ? [p.grad] : []))) : true;
    if (finite) opt.step();
    T.synchronize(dev);
    if (i >= warmup) {
      times.push(performance.now() - t);
      const ru1 = process.resourceUsage();
      cpu.push((ru1.userCPUTime + ru1.systemCPUTime - ru0.userCPUTime - ru0.systemCPUTime) / 1000);
      faults.push(ru1.minorPageFault - ru0.minorPageFault);
    }
  }
  const ru = process.resourceUsage();
  const out: Sample = {
    times_ms: times,
    cpu_ms: cpu,
    faults,
    peak_rss_mb: ru.maxRSS / 1024,
    loss,
    minor_faults: ru.minorPageFault,
  };
  console.log(JSON.stringify(out));
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const PYTHON = process.env['GOODSREC_BENCH_PYTHON'] ?? '/usr/bin/python3';

function runSide(
  side: 'goodsrec' | 'pytorch',
  format: Format,
  precision: Precision,
  steps: number,
  warmup: number,
  threads: number,
  device: BenchDevice,
): Sample {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', GOODSREC_THREADS: String(threads) };
  // The reference is PyTorch as users run it: glibc's default malloc, whatever goodsrec's policy is.
  if (side === 'pytorch') delete env.GLIBC_TUNABLES;
  const out =
    side === 'pytorch'
      ? execFileSync(
          PYTHON,
          [
            join(REPO, 'bench', 'train_step_torch.py'),
            format,
            String(steps),
            String(warmup),
            String(threads),
            precision,
            device,
          ],
          { encoding: 'utf8', env },
        )
      : execFileSync(process.execPath, [HERE, '--child', format, precision, String(steps), String(warmup), device], {
          encoding: 'utf8',
          env,
        });
  const line = out.trim().split('\n').pop()!;
  return JSON.parse(line) as Sample;
}

export async function run(): Promise<void> {
  const threads = availableParallelism();
  const steps = Number(process.env['GOODSREC_BENCH_STEPS'] ?? 5);
  const warmup = Number(process.env['GOODSREC_BENCH_WARMUP'] ?? 2);
  const rounds = Number(process.env['GOODSREC_BENCH_ROUNDS'] ?? 2);
  const amp = process.env['GOODSREC_BENCH_AMP'] ?? 'off';
  const device = (process.env['GOODSREC_BENCH_DEVICE'] ?? 'cpu') as BenchDevice;
  if (device !== 'cpu' && device !== 'cuda')
    throw new Error(`GOODSREC_BENCH_DEVICE must be 'cpu' or 'cuda', not '${device}'`);
  const low: Precision = device === 'cuda' ? 'fp16' : 'bf16';
  const precisions: Precision[] = amp === 'off' ? ['fp32'] : amp === low ? [low] : amp === 'both' ? ['fp32', low] : [];
  if (precisions.length === 0)
    throw new Error(`GOODSREC_BENCH_AMP must be 'off', '${low}' or 'both' on ${device}, not '${amp}'`);
  const rows: Record<string, unknown>[] = [];
  const formats = (process.env['GOODSREC_BENCH_FORMATS'] ?? 'nchw,channels_last').split(',') as Format[];
  if (formats.some((f) => f !== 'nchw' && f !== 'channels_last'))
    throw new Error(`GOODSREC_BENCH_FORMATS: expected nchw and/or channels_last`);
  const T = await import('../src/tensor/index.js');
  const b = T.buildInfo();
  const torchVersion = execFileSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], {
    encoding: 'utf8',
  }).trim();
  console.log(
    `train-step bench on ${device}: ResNet-50, batch ${benchBatch()}, 3x${benchSize()}x${benchSize()}, 1000 classes, SGD momentum, label smoothing; ${threads} threads; ` +
      `${rounds} x ${steps} timed steps per side and format (after ${warmup} warm-up); load average at start ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  console.log(
    `machine: ${machineLine({ libtorch: b.torchVersion, mkldnn: b.mkldnn, 'goodsrec malloc': T.getMallocPolicy(), PyTorch: `${torchVersion} (${PYTHON})` })}`,
  );
  for (const precision of precisions)
    for (const format of formats) {
      const label = `${format} ${precision}`;
      const acc = {
        goodsrec: { t: [] as number[], cpu: [] as number[], faults: [] as number[], rss: [] as number[] },
        pytorch: { t: [] as number[], cpu: [] as number[], faults: [] as number[], rss: [] as number[] },
      };
      for (let r = 0; r < rounds; r++) {
        // Alternate which side goes first so that drifting machine load hits both alike.
        const order = r % 2 === 0 ? (['pytorch', 'goodsrec'] as const) : (['goodsrec', 'pytorch'] as const);
        for (const side of order) {
          const s = runSide(side, format, precision, steps, warmup, threads, device);
          acc[side].t.push(...s.times_ms);
          acc[side].cpu.push(...s.cpu_ms);
          acc[side].faults.push(...s.faults);
          acc[side].rss.push(s.peak_rss_mb);
          console.log(
            `  ${label} ${side.padEnd(8)} round ${r}: median ${median(s.times_ms).toFixed(0)} ms/step (${s.times_ms.map((v) => v.toFixed(0)).join(' ')}), ` +
              `CPU ${median(s.cpu_ms).toFixed(0)} ms/step, ${(median(s.faults) / 1e3).toFixed(1)}k page faults/step, ` +
              `peak RSS ${s.peak_rss_mb.toFixed(0)} MB, last loss ${s.loss.toFixed(4)}`,
          );
        }
      }
      // Medians over all timed steps, and over the processes' peak RSS (which varies by a few % run to run).
      const g = median(acc.goodsrec.t),
        p = median(acc.pytorch.t);
      const gr = median(acc.goodsrec.rss),
        pr = median(acc.pytorch.rss);
      const range = (v: number[]): string => `${Math.min(...v).toFixed(0)}-${Math.max(...v).toFixed(0)}`;
      const gc = median(acc.goodsrec.cpu),
        pc = median(acc.pytorch.cpu);
      rows.push({
        device,
        format,
        precision,
        goodsrecMs: g,
        pytorchMs: p,
        ratio: g / p,
        goodsrecRssMb: gr,
        pytorchRssMb: pr,
      });
      console.log(
        `${label}: goodsrec ${g.toFixed(0)} ms/step, PyTorch ${p.toFixed(0)} ms/step, time ratio ${(g / p).toFixed(3)}; ` +
          `CPU time ratio ${(gc / pc).toFixed(3)} (${gc.toFixed(0)} / ${pc.toFixed(0)} ms); page faults/step ` +
          `${(median(acc.goodsrec.faults) / 1e3).toFixed(1)}k / ${(median(acc.pytorch.faults) / 1e3).toFixed(1)}k; ` +
          `peak RSS goodsrec ${gr.toFixed(0)} MB (${range(acc.goodsrec.rss)}), PyTorch ${pr.toFixed(0)} MB (${range(acc.pytorch.rss)}), RSS ratio ${(gr / pr).toFixed(3)}`,
      );
    }
  const jsonOut = process.env['GOODSREC_BENCH_JSON'];
  if (jsonOut)
    writeFileSync(jsonOut, `${JSON.stringify({ pytorch: torchVersion, libtorch: b.torchVersion, rows }, null, 2)}\n`);
  console.log(
    `load average at end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}

if (process.argv[1] === HERE && process.argv[2] === '--child') {
  await child(
    process.argv[3] as Format,
    process.argv[4] as Precision,
    Number(process.argv[5]),
    Number(process.argv[6]),
    (process.argv[7] ?? 'cpu') as BenchDevice,
  );
} else if (process.argv[1] === HERE) {
  await run();
}
