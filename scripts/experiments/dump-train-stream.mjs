#!/usr/bin/env node
// Writes the exact training batches `goodsrec train` would see (its loader, pipeline, sampler and seed)
// to a folder, so another trainer can be fed goodsrec's data: bench/train_torchvision.py --stream DIR
// trains the torchvision twin on them. This splits an accuracy gap into "data" vs "model + optimiser".
//
//   node scripts/experiments/dump-train-stream.mjs --out DIR [--data ../shared/datasets/grocery-store]
//       [--size 64] [--epochs 4] [--seed 0] [--batch-size 32] [--set key=value ...] [--exact] [--full-decode]
//
// DIR/x.f32: float32 NCHW batches back to back; DIR/stream.json: shape, steps, and each sample's path
// relative to the dataset root (the twin maps paths to its own labels).
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: o } = parseArgs({
  options: {
    out: { type: 'string' },
    data: { type: 'string', default: resolve(REPO, '..', 'shared', 'datasets', 'grocery-store') },
    size: { type: 'string', default: '64' },
    epochs: { type: 'string', default: '4' },
    seed: { type: 'string', default: '0' },
    'batch-size': { type: 'string', default: '32' },
    set: { type: 'string', multiple: true, default: [] },
    // The pipeline's speed-ups off: every op literally (no fused letterbox + crop) / full-size decoding.
    exact: { type: 'boolean', default: false },
    'full-decode': { type: 'boolean', default: false },
    gap: { type: 'string' }, // the pipeline's reducingGap
  },
});
if (!o.out) throw new Error('--out DIR is required');
const { resolveConfig, parseOverride } = await import(join(REPO, 'dist', 'src', 'run', 'config.js'));
const { trainPipeline } = await import(join(REPO, 'dist', 'src', 'run', 'pipelines.js'));
const { prepareDataset } = await import(join(REPO, 'dist', 'src', 'train', 'trainer.js'));
const { DataLoader } = await import(join(REPO, 'dist', 'src', 'data', 'index.js'));

// The recipe seeds.mjs runs (Cutout 8), then any --set on top.
const base = [
  `data.root=${resolve(o.data)}`,
  `input.size=${o.size}`,
  `schedule.epochs=${o.epochs}`,
  `seed=${o.seed}`,
  `batchSize=${o['batch-size']}`,
  'augment.cutout=8',
];
const c = resolveConfig([...base, ...o.set].map((kv) => ({ source: `--set ${kv}`, values: parseOverride(kv) })));
const { train } = prepareDataset(c);
const pipeline = {
  ...trainPipeline(c),
  exact: o.exact,
  fastDecode: !o['full-decode'],
  ...(o.gap ? { reducingGap: Number(o.gap) } : {}),
};
const loader = new DataLoader({
  dataset: train,
  pipeline,
  batchSize: c.batchSize,
  mode: 'train',
  seed: c.seed,
  sampler: 'shuffle',
  dropLast: train.samples.length > c.batchSize,
  workers: Number(process.env.WORKERS ?? 2),
});
mkdirSync(o.out, { recursive: true });
const fd = openSync(join(o.out, 'x.f32'), 'w');
const paths = [];
let shape = null;
for (let e = 0; e < c.schedule.epochs; e++) {
  loader.setState({ epoch: e, step: 0 });
  for await (const b of loader) {
    shape = b.shape;
    writeSync(fd, new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength));
    for (const i of b.indices) {
      const p = train.samples[i].path;
      paths.push(p.startsWith('/') ? relative(train.root, p) : p);
    }
  }
  process.stderr.write(`epoch ${e + 1}: ${paths.length} samples\n`);
}
closeSync(fd);
await loader.close();
writeFileSync(
  join(o.out, 'stream.json'),
  JSON.stringify({
    root: train.root,
    batch: shape,
    stepsPerEpoch: loader.stepsPerEpoch,
    epochs: c.schedule.epochs,
    pipeline,
    paths,
  }),
);
