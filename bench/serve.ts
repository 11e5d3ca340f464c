/**
 * `npm run bench -- serve`: images/s of a ResNet-50 recognizer (81 classes, 224 px, the serving
 * pre-processing) three ways, in the same run on the same photos and thread count:
 *  - goodsrec's server (`goodsrec serve`, a child process) under 8 concurrent clients on loopback,
 *    end to end (HTTP upload, decode + evalPipeline, micro-batched onnxruntime, top-5 JSON);
 *  - onnxruntime-node alone on pre-processed batches of 8;
 *  - PyTorch 1.13 eager (torchvision resnet50, PIL pre-processing, batches of 8), end to end and
 *    inference alone, and inference through torch.jit.optimize_for_inference (PyTorch's fastest fp32 path);
 *  - the fp32 ceiling: the threads' fp32 matrix-product rate over the model's FLOPs per image, which no
 *    fp32 engine passes by much (it bounds the fp32 goal on a small machine).
 * The server and onnxruntime rows are measured for the fp32 graph and the int8 one (`export --int8`,
 * calibrated on 32 training photos).
 * Prints the ratios server / PyTorch eager (goal >= 2 fp32, >= 4 int8), int8 / fp32 onnxruntime (goal >= 3)
 * and the load average before and after.
 *
 * Env: GOODSREC_BENCH_SECONDS (per measurement, default 10), GOODSREC_BENCH_THREADS (default: cores),
 * GOODSREC_BENCH_IMAGES (photos cycled through, default 48).
 */
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCsv } from '../src/data/dataset.js';
import { machineLine } from './machine.js';

const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const DATASET = join(REPO, '..', 'shared', 'datasets', 'grocery-store');

function photoList(n: number): string[] {
  const manifest = join(DATASET, 'dataset', 'test.txt');
  if (existsSync(manifest)) {
    const lines = parseCsv(readFileSync(manifest, 'utf8')).map((r) => r[0]!.trim());
    const step = Math.max(1, Math.floor(lines.length / n));
    return lines
      .filter((_, i) => i % step === 0)
      .slice(0, n)
      .map((p) => join(DATASET, 'dataset', p));
  }
  const sample = join(REPO, 'examples', 'grocery-sample', 'test');
  return readdirSync(sample)
    .flatMap((c) => readdirSync(join(sample, c)).map((f) => join(sample, c, f)))
    .slice(0, n);
}

function pct(v: number[], p: number): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
}

async function startServer(dir: string, threads: number): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(
    process.execPath,
    [join(REPO, 'dist', 'src', 'cli', 'main.js'), 'serve', dir, '--port', '0', '--threads', String(threads)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const url = await new Promise<string>((res, rej) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) res(m[1]!);
    });
    child.on('exit', (code) => rej(new Error(`goodsrec serve exited (${code}) before listening: ${out}`)));
  });
  return {
    url,
    stop: () =>
      new Promise<void>((res) => {
        child.on('exit', () => res());
        child.kill('SIGTERM');
      }),
  };
}

/** `concurrency` clients post photos in turn for `seconds` (after a warm-up); images/s and latencies. */
async function load(
  url: string,
  bodies: Buffer<ArrayBuffer>[],
  concurrency: number,
  seconds: number,
): Promise<{ rate: number; p50: number; p99: number; errors: number }> {
  const post = (b: Buffer<ArrayBuffer>) =>
    fetch(`${url}/v1/predict`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: b });
  const warmEnd = performance.now() + 2000;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < warmEnd) await (await post(bodies[next++ % bodies.length]!)).arrayBuffer();
    }),
  );
  const lat: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        const r = await post(bodies[next++ % bodies.length]!);
        await r.arrayBuffer();
        if (r.status !== 200) errors++;
        lat.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  return { rate: lat.length / elapsed, p50: pct(lat, 0.5), p99: pct(lat, 0.99), errors };
}

export async function run(): Promise<void> {
  const seconds = Number(process.env.GOODSREC_BENCH_SECONDS ?? 10);
  const threads = Number(process.env.GOODSREC_BENCH_THREADS ?? availableParallelism());
  const photos = photoList(Number(process.env.GOODSREC_BENCH_IMAGES ?? 48));
  const loadBefore = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  console.log(`machine: ${machineLine()}`);
  console.log(
    `resnet50, 81 classes, 224 px; ${photos.length} photos; ${threads} threads; ${seconds} s per measurement; load average before: ${loadBefore}`,
  );

  const T = await import('../src/tensor/index.js');
  const { createModel } = await import('../src/models/index.js');
  const { exportLoaded, exportLoadedInt8, calibrationPhotos } = await import('../src/serve/onnx/export.js');
  const { processFile } = await import('../src/data/index.js');
  const { evalPipeline, preprocessFromConfig } = await import('../src/run/pipelines.js');
  const { resolveConfig } = await import('../src/run/config.js');
  const ort = (await import('onnxruntime-node')).default;

  const work = mkdtempSync(join(tmpdir(), 'goodsrec-bench-serve-'));
  try {
    // The recipe's evaluation pre-processing at 224 (letterbox 256, center crop 224).
    const preprocess = preprocessFromConfig(
      resolveConfig([{ source: 'bench', values: { data: { root: '(bench)' } } }]),
    );
    T.manualSeed(0);
    const model = createModel('resnet50', { numClasses: 81, log: null });
    model.eval();
    const classes = Array.from({ length: 81 }, (_, i) => `class-${i}`);
    const dir = join(work, 'export');
    exportLoaded({ model, modelName: 'resnet50', classes, preprocess }, { outDir: dir });
    // int8: calibrated on 32 training photos (the sample's when the Grocery Store set is absent).
    const calib = existsSync(join(DATASET, 'dataset', 'train.txt'))
      ? DATASET
      : join(REPO, 'examples', 'grocery-sample');
    const dir8 = join(work, 'export-int8');
    await exportLoadedInt8(
      { model, modelName: 'resnet50', classes, preprocess },
      {
        outDir: dir8,
        int8: { batches: await calibrationPhotos(calib, 'train', preprocess, 32, 8), method: 'percentile' },
      },
    );
    model.dispose();
    const bodies = photos.map((p) => readFileSync(p));
    const pipe = evalPipeline(preprocess);
    const items = await Promise.all(photos.slice(0, 8).map((p) => processFile(p, pipe, 0)));
    const x = new Float32Array(8 * 3 * 224 * 224);
    items.forEach((it, i) => x.set(it.data as Float32Array, i * 3 * 224 * 224));

    const rates: Record<string, { served: number; ort: number }> = {};
    for (const [precision, d] of [
      ['fp32', dir],
      ['int8', dir8],
    ] as const) {
      // 1. the server, 8 concurrent clients
      const server = await startServer(d, threads);
      let served: Awaited<ReturnType<typeof load>>;
      try {
        served = await load(server.url, bodies, 8, seconds);
      } finally {
        await server.stop();
      }
      console.log(
        `goodsrec serve ${precision}, concurrency 8: ${served.rate.toFixed(1)} images/s (p50 ${served.p50.toFixed(0)} ms, p99 ${served.p99.toFixed(0)} ms, ${served.errors} errors)`,
      );

      // 2. onnxruntime alone, batches of 8 pre-processed images
      const session = await ort.InferenceSession.create(join(d, 'model.onnx'), {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
      });
      const feed = { input: new ort.Tensor('float32', x, [8, 3, 224, 224]) };
      await session.run(feed);
      let n = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < (seconds / 2) * 1000) {
        await session.run(feed);
        n += 8;
      }
      const ortRate = n / ((performance.now() - t0) / 1000);
      await session.release();
      console.log(`onnxruntime ${precision} alone, batch 8:     ${ortRate.toFixed(1)} images/s`);
      rates[precision] = { served: served.rate, ort: ortRate };
    }

    // 3. PyTorch eager, same photos, same threads
    const py = JSON.parse(
      execFileSync(
        '/usr/bin/python3',
        [
          join(REPO, 'bench', 'serve_torch.py'),
          String(threads),
          String(seconds),
          JSON.stringify(preprocess.mean),
          JSON.stringify(preprocess.std),
          ...photos,
        ],
        {
          encoding: 'utf8',
          env: { ...process.env, OMP_NUM_THREADS: String(threads) },
          maxBuffer: 1 << 20,
        },
      )
        .trim()
        .split('\n')
        .pop()!,
    ) as {
      images: number;
      seconds: number;
      infer_images: number;
      infer_seconds: number;
      frozen_images: number;
      frozen_seconds: number;
      gemm_gflops: number;
      model_gflop: number;
    };
    const torchE2e = py.images / py.seconds;
    const torchInfer = py.infer_images / py.infer_seconds;
    const torchFrozen = py.frozen_images / py.frozen_seconds;
    const ceiling = py.gemm_gflops / py.model_gflop;
    console.log(
      `PyTorch eager end to end, b8:   ${torchE2e.toFixed(1)} images/s (PIL decode + pre-processing + inference)`,
    );
    console.log(`PyTorch eager inference, b8:    ${torchInfer.toFixed(1)} images/s`);
    console.log(
      `PyTorch optimize_for_inference, b8: ${torchFrozen.toFixed(1)} images/s (BN folded, oneDNN pre-packed)`,
    );
    const pct = (v: number): string => `${((100 * v) / ceiling).toFixed(0)} %`;
    console.log(
      `fp32 ceiling: ${ceiling.toFixed(1)} images/s (${py.gemm_gflops.toFixed(0)} GFLOP/s in a 2048^2 fp32 matrix ` +
        `product on ${threads} threads / ${py.model_gflop.toFixed(2)} GFLOP per image); of it: server fp32 ` +
        `${pct(rates.fp32!.served)}, onnxruntime fp32 ${pct(rates.fp32!.ort)}, PyTorch optimized ${pct(torchFrozen)}, ` +
        `eager ${pct(torchInfer)}; 2x PyTorch end to end needs ${pct(2 * torchE2e)}`,
    );
    const r = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;
    console.log(`ratio server fp32 / PyTorch eager end to end: ${r(rates.fp32!.served, torchE2e)} (goal >= 2x)`);
    console.log(`ratio server int8 / PyTorch eager end to end: ${r(rates.int8!.served, torchE2e)} (goal >= 4x)`);
    console.log(`ratio onnxruntime fp32 / PyTorch inference:   ${r(rates.fp32!.ort, torchInfer)}`);
    console.log(`ratio onnxruntime int8 / fp32:                ${r(rates.int8!.ort, rates.fp32!.ort)} (goal >= 3x)`);
    console.log(
      `load average after: ${loadavg()
        .map((v) => v.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
