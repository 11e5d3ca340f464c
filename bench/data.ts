/**
 * `npm run bench -- data`: loader throughput on the grocery-store train split, goodsrec vs torchvision
 * (ImageFolder-equivalent + DataLoader(num_workers = cores)) measured in the same run.
 * Pipeline: the trainer's (src/run/pipelines.ts trainPipeline, Cutout off): decode -> structure-retention
 * pad to square -> RandomResizedCrop 224 -> flip -> ColorJitter(0.4, 0.4, 0.4) [-> AutoAugment] -> normalize
 * -> float32 NCHW batches of 64.
 * Then the same on phone-size photos (the first 400 train images re-encoded at 1632x1224, as shop photos
 * usually arrive), where decoding at reduced size (fastDecode, the training default) matters.
 *
 * Env: GOODSREC_BENCH_EPOCHS (default 2), GOODSREC_BENCH_WORKERS (goodsrec worker threads, default cores),
 * GOODSREC_BENCH_SWEEP=1 (also time worker/in-flight settings on the first 800 images),
 * GOODSREC_BENCH_LARGE=0 (skip the phone-size part), GOODSREC_BENCH_AUGMENT=autoaugment (add AutoAugment, ImageNet
 * policy, after ColorJitter: timm's 'original' in goodsrec, torchvision's AutoAugment in the reference).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import sharp from 'sharp';
import { resolve, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataLoader, parseCsv, readManifestDataset, selectSplits, type PipelineConfig } from '../src/data/index.js';
import { resolveConfig } from '../src/run/config.js';
import { trainPipeline } from '../src/run/pipelines.js';

const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const DATASET = resolve(REPO, '..', 'shared', 'datasets', 'grocery-store');

/** GOODSREC_BENCH_AUGMENT=autoaugment adds AutoAugment (ImageNet policy) after ColorJitter, on both sides. */
const AUGMENT = process.env['GOODSREC_BENCH_AUGMENT'] === 'autoaugment' ? 'autoaugment' : '';

/** The trainer's own pipeline at 224 (Cutout off: the torchvision twin has none). */
const CONFIG = resolveConfig([
  {
    source: 'bench',
    values: { data: { root: DATASET }, augment: { cutout: 0, autoAugment: AUGMENT ? 'original' : null } },
  },
]);

function pipeline(fastDecode: boolean): PipelineConfig {
  return { ...trainPipeline(CONFIG), fastDecode };
}

async function goodsrec(
  label: string,
  opts: {
    fastDecode: boolean;
    workers: number;
    perWorker: number;
    cacheBytes: number;
    limit?: number;
    exactOps?: boolean;
    dataset?: string;
  },
  epochs: number,
): Promise<number[]> {
  const all = selectSplits(readManifestDataset(opts.dataset ?? DATASET), 'train');
  const ds = opts.limit ? { ...all, samples: all.samples.slice(0, opts.limit) } : all;
  const loader = new DataLoader({
    dataset: ds,
    pipeline: { ...pipeline(opts.fastDecode), exact: opts.exactOps ?? false },
    batchSize: 64,
    seed: 0,
    workers: opts.workers,
    perWorker: opts.perWorker,
    prefetch: 3,
    cacheBytes: opts.cacheBytes,
    reuseBuffers: true,
  });
  const rates: number[] = [];
  for (let e = 0; e < epochs; e++) {
    const t = performance.now();
    let n = 0;
    for await (const b of loader) n += b.shape[0];
    const s = (performance.now() - t) / 1000;
    rates.push(n / s);
    console.log(`  goodsrec ${label} epoch ${e}: ${n} images in ${s.toFixed(2)} s = ${(n / s).toFixed(0)} img/s`);
  }
  await loader.close();
  return rates;
}

function torchvision(epochs: number, workers: number, dataset = DATASET): number[] {
  const out = execFileSync(
    '/usr/bin/python3',
    [
      join(REPO, 'bench', 'data_torchvision.py'),
      dataset,
      String(epochs),
      String(workers),
      AUGMENT,
      JSON.stringify(CONFIG.input.mean),
      JSON.stringify(CONFIG.input.std),
    ],
    { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } },
  );
  return out
    .trim()
    .split('\n')
    .map((l) => {
      const r = JSON.parse(l) as { epoch: number; images: number; seconds: number };
      console.log(
        `  torchvision epoch ${r.epoch}: ${r.images} images in ${r.seconds.toFixed(2)} s = ${(r.images / r.seconds).toFixed(0)} img/s`,
      );
      return r.images / r.seconds;
    });
}

/** goodsrec's best epoch, the first left out when there are more (it warms caches and starts workers). */
const best = (r: number[]) => Math.max(...r.slice(r.length > 1 ? 1 : 0));

export async function run(): Promise<void> {
  const cores = availableParallelism();
  const epochs = Number(process.env['GOODSREC_BENCH_EPOCHS'] ?? 2);
  const workers = Number(process.env['GOODSREC_BENCH_WORKERS'] ?? cores);
  console.log(
    `data loader bench: grocery-store train split, ${cores} cores, batch 64, letterbox + RRC 224 + flip + ColorJitter${AUGMENT ? ' + AutoAugment' : ''} + normalize -> float32 NCHW`,
  );
  const tv = torchvision(epochs, cores);
  // torchvision's best epoch, its first included (it has no cache that warms up): the conservative ratio.
  const tvRate = Math.max(...tv);
  if (process.env['GOODSREC_BENCH_SWEEP'] === '1') {
    for (const [w, pw] of [
      [0, 4],
      [1, 2],
      [2, 1],
      [2, 2],
      [2, 4],
      [3, 2],
      [4, 1],
    ] as const) {
      await goodsrec(
        `(sweep: ${w} workers x ${pw} in flight, 800 images)`,
        { fastDecode: true, workers: w, perWorker: pw, cacheBytes: 0, limit: 800 },
        1,
      );
    }
  }
  const dflt = await goodsrec(
    '(default: decode + fused letterbox/RRC)',
    { fastDecode: true, workers, perWorker: 2, cacheBytes: 0 },
    epochs,
  );
  const exact = await goodsrec(
    '(exact: literal torchvision op order)',
    { fastDecode: false, workers, perWorker: 2, cacheBytes: 0, exactOps: true },
    1,
  );
  const cached = await goodsrec(
    '(prefix cache 1 GiB: decode + letterbox kept in memory)',
    { fastDecode: true, workers, perWorker: 2, cacheBytes: 1 << 30 },
    Math.max(2, epochs),
  );
  console.log(`torchvision (num_workers=${cores}, persistent): ${tvRate.toFixed(0)} img/s`);
  console.log(`goodsrec default:           ${best(dflt).toFixed(0)} img/s  ratio ${(best(dflt) / tvRate).toFixed(2)}x`);
  console.log(
    `goodsrec exact op order:    ${best(exact).toFixed(0)} img/s  ratio ${(best(exact) / tvRate).toFixed(2)}x`,
  );
  console.log(
    `goodsrec cached (epoch>=1): ${best(cached).toFixed(0)} img/s  ratio ${(best(cached) / tvRate).toFixed(2)}x  (first epoch ${cached[0]!.toFixed(0)} img/s)`,
  );
  if (process.env['GOODSREC_BENCH_LARGE'] !== '0') await large(epochs, cores, workers);
}

/** The same pipeline on phone-size photos: 400 train images re-encoded at 1632x1224 in a temp folder. */
async function large(epochs: number, cores: number, workers: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'goodsrec-bench-large-'));
  try {
    const lines = parseCsv(readFileSync(join(DATASET, 'dataset', 'train.txt'), 'utf8')).slice(0, 400);
    mkdirSync(join(dir, 'dataset', 'img'), { recursive: true });
    const manifest: string[] = [];
    for (const [i, l] of lines.entries()) {
      const [rel, label] = l.map((x) => x.trim());
      const name = `img/${i}.jpg`;
      await sharp(join(DATASET, 'dataset', rel!))
        .resize(1632, 1224, { fit: 'fill' })
        .jpeg({ quality: 90 })
        .toFile(join(dir, 'dataset', name));
      manifest.push(`${name}, ${label}`);
    }
    writeFileSync(join(dir, 'dataset', 'train.txt'), manifest.join('\n') + '\n');
    copyFileSync(join(DATASET, 'dataset', 'classes.csv'), join(dir, 'dataset', 'classes.csv'));
    console.log(`phone-size photos: ${lines.length} train images re-encoded at 1632x1224 (JPEG q90), same pipeline`);
    const tv = Math.max(...torchvision(epochs, cores, dir));
    const fast = await goodsrec(
      '(fastDecode: DCT-scaled windowed decode, the training default)',
      { fastDecode: true, workers, perWorker: 2, cacheBytes: 0, dataset: dir },
      epochs,
    );
    const full = await goodsrec(
      '(full-size decode)',
      { fastDecode: false, workers, perWorker: 2, cacheBytes: 0, dataset: dir },
      epochs,
    );
    console.log(`torchvision, phone-size (num_workers=${cores}): ${tv.toFixed(0)} img/s`);
    console.log(
      `goodsrec fastDecode, phone-size:   ${best(fast).toFixed(0)} img/s  ratio ${(best(fast) / tv).toFixed(2)}x`,
    );
    console.log(
      `goodsrec full decode, phone-size:  ${best(full).toFixed(0)} img/s  ratio ${(best(full) / tv).toFixed(2)}x`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await run();
