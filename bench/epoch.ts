/**
 * `npm run bench -- epoch`: one training epoch on real photos (the Grocery Store train split), each side with its
 * own pipeline end to end: `goodsrec train` (decode, letterbox, RandomResizedCrop, flip, ColorJitter, Cutout,
 * batch, step) against bench/train_torchvision.py (PIL + torchvision transforms in DataLoader workers, the same
 * recipe). ResNet-50, batch 32, 2 compute threads and 2 loader workers on each side, run one after the other.
 * Beside them, goodsrec's loader alone (the trainer's pipeline, no model): it must stay faster than the step.
 *
 * Each layout (NCHW, channels_last) and precision (fp32, bf16 autocast) runs on both sides; the last line sets
 * goodsrec's fastest setting against torchvision's fastest (its best CPU setting), whatever they are.
 *
 * Env: GOODSREC_BENCH_EPOCH_SIZE (input size, default 128), GOODSREC_BENCH_EPOCH_THREADS (default 2),
 * GOODSREC_BENCH_EPOCH_LAYOUT (both | nchw | channels_last, default both), GOODSREC_BENCH_EPOCH_AMP (off | bf16 |
 * both; default both on CPUs with native bf16, off on the others, where bf16 is emulated and slow).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineLine } from './machine.js';
import { DEFAULT_CONFIG } from '../src/run/config.js';
import { cpuHasNativeBf16 } from '../src/util/cpu-features.js';

const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const DATASET = join(REPO, '..', 'shared', 'datasets', 'grocery-store');

type Amp = 'off' | 'bf16';

interface EpochFigure {
  images: number;
  seconds: number;
  imagesPerSec: number;
}

/** goodsrec train for one epoch without validation; the epoch record of its metrics.jsonl. */
function goodsrecEpoch(size: number, threads: number, channelsLast: boolean, amp: Amp): EpochFigure {
  const out = mkdtempSync(join(tmpdir(), 'goodsrec-bench-epoch-'));
  try {
    const r = spawnSync(
      process.execPath,
      [
        join(REPO, 'dist', 'src', 'cli', 'main.js'),
        'train',
        '--data',
        DATASET,
        '--model',
        'resnet50',
        '--size',
        String(size),
        '--batch-size',
        '32',
        '--epochs',
        '1',
        '--set',
        'schedule.warmupEpochs=0.5',
        '--set',
        'schedule.perIteration=true',
        '--set',
        'augment.cutout=8',
        '--set',
        `threads=${threads}`,
        '--set',
        'data.workers=2',
        '--set',
        'validateEvery=0',
        '--set',
        `model.channelsLast=${channelsLast}`,
        '--set',
        `amp=${amp}`,
        '--out',
        out,
        '--name',
        'run',
      ],
      { encoding: 'utf8', env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } },
    );
    if (r.status !== 0) throw new Error(`goodsrec train failed (${r.status}): ${r.stderr.slice(-2000)}`);
    const rec = readFileSync(join(out, 'run', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((m) => m.type === 'epoch') as { seconds: number; imagesPerSec: number } | undefined;
    if (!rec) throw new Error('goodsrec train wrote no epoch record');
    return { images: Math.round(rec.imagesPerSec * rec.seconds), seconds: rec.seconds, imagesPerSec: rec.imagesPerSec };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** The recipe's mean/std for the twin, from their one source. */
const NORM = JSON.stringify({ mean: DEFAULT_CONFIG.input.mean, std: DEFAULT_CONFIG.input.std });

/** The torchvision twin's first epoch record; the process is stopped there (its final evaluation is not timed). */
function torchvisionEpoch(size: number, threads: number, channelsLast: boolean, amp: Amp): Promise<EpochFigure> {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(
      '/usr/bin/python3',
      [
        join(REPO, 'bench', 'train_torchvision.py'),
        '--data',
        DATASET,
        '--size',
        String(size),
        '--batch-size',
        '32',
        '--epochs',
        '1',
        '--warmup-epochs',
        '0.5',
        '--cutout',
        '8',
        '--threads',
        String(threads),
        '--workers',
        '2',
        ...(channelsLast ? ['--channels-last'] : []),
        '--amp',
        amp,
      ],
      { env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', GOODSREC_NORM: NORM }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let text = '',
      err = '';
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    p.stdout.on('data', (d: Buffer) => {
      text += d.toString();
      const line = text.split('\n').find((l) => l.startsWith('{"epoch"'));
      if (!line) return;
      const r = JSON.parse(line) as { seconds: number; imagesPerSec: number };
      p.kill('SIGKILL');
      resolvePromise({
        images: Math.round(r.imagesPerSec * r.seconds),
        seconds: r.seconds,
        imagesPerSec: r.imagesPerSec,
      });
    });
    p.on('exit', (code) => {
      if (!text.includes('{"epoch"')) reject(new Error(`train_torchvision.py exited ${code}: ${err.slice(-2000)}`));
    });
  });
}

/** goodsrec's loader alone with the trainer's own pipeline and workers: images per second over one epoch. */
async function loaderAlone(size: number): Promise<number> {
  const { resolveConfig } = await import('../src/run/config.js');
  const { trainPipeline } = await import('../src/run/pipelines.js');
  const { DataLoader, loadDataset, selectSplits } = await import('../src/data/index.js');
  const c = resolveConfig([
    { source: 'bench', values: { data: { root: DATASET }, input: { size }, augment: { cutout: 8 }, batchSize: 32 } },
  ]);
  const ds = selectSplits(loadDataset(DATASET), 'train');
  const loader = new DataLoader({
    dataset: ds,
    pipeline: trainPipeline(c),
    batchSize: 32,
    mode: 'train',
    seed: 0,
    workers: 2,
    reuseBuffers: true,
  });
  const t = performance.now();
  let n = 0;
  for await (const b of loader) n += b.labels.length;
  await loader.close();
  return n / ((performance.now() - t) / 1000);
}

export async function run(): Promise<void> {
  const size = Number(process.env.GOODSREC_BENCH_EPOCH_SIZE ?? 128);
  const threads = Number(process.env.GOODSREC_BENCH_EPOCH_THREADS ?? 2);
  const layout = process.env.GOODSREC_BENCH_EPOCH_LAYOUT ?? 'both';
  if (!['both', 'nchw', 'channels_last'].includes(layout)) {
    throw new Error(`GOODSREC_BENCH_EPOCH_LAYOUT=${layout}: expected both, nchw or channels_last`);
  }
  const layouts = layout === 'both' ? [false, true] : [layout === 'channels_last'];
  const ampEnv = process.env.GOODSREC_BENCH_EPOCH_AMP ?? (cpuHasNativeBf16() ? 'both' : 'off');
  if (!['both', 'off', 'bf16'].includes(ampEnv)) {
    throw new Error(`GOODSREC_BENCH_EPOCH_AMP=${ampEnv}: expected both, off or bf16`);
  }
  const amps: Amp[] = ampEnv === 'both' ? ['off', 'bf16'] : [ampEnv as Amp];
  console.log(
    `epoch bench: ResNet-50 at ${size} px, batch 32, Grocery Store train split, ${threads} compute threads + 2 loader workers per side`,
  );
  console.log(`machine: ${machineLine()}`);
  const loader = await loaderAlone(size);
  console.log(`  goodsrec loader alone (trainer pipeline, 2 workers): ${loader.toFixed(0)} img/s`);
  const ratios: string[] = [];
  const best = { goodsrec: { s: Infinity, name: '' }, torchvision: { s: Infinity, name: '' } };
  for (const amp of amps)
    for (const channelsLast of layouts) {
      const name = `${channelsLast ? 'channels_last' : 'NCHW'} ${amp === 'off' ? 'fp32' : 'bf16'}`;
      const g = goodsrecEpoch(size, threads, channelsLast, amp);
      console.log(
        `  ${name}: goodsrec train epoch:    ${g.images} images in ${g.seconds.toFixed(1)} s = ${g.imagesPerSec.toFixed(1)} img/s`,
      );
      const t = await torchvisionEpoch(size, threads, channelsLast, amp);
      console.log(
        `  ${name}: torchvision train epoch: ${t.images} images in ${t.seconds.toFixed(1)} s = ${t.imagesPerSec.toFixed(1)} img/s`,
      );
      ratios.push(`${name} ${(g.seconds / t.seconds).toFixed(3)}`);
      console.log(`  ${name}: loader alone ${(loader / g.imagesPerSec).toFixed(1)}x the training step's img/s`);
      if (g.seconds < best.goodsrec.s) best.goodsrec = { s: g.seconds, name };
      if (t.seconds < best.torchvision.s) best.torchvision = { s: t.seconds, name };
    }
  console.log(`epoch: time ratio goodsrec/torchvision, same setting: ${ratios.join(', ')} (goal <= 0.8)`);
  console.log(
    `epoch: best against best: goodsrec ${best.goodsrec.name} ${best.goodsrec.s.toFixed(1)} s, torchvision ${best.torchvision.name} ` +
      `${best.torchvision.s.toFixed(1)} s, ratio ${(best.goodsrec.s / best.torchvision.s).toFixed(3)}`,
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run();
