/**
 * Child process for test/data-native.test.ts: runs decoding, several pipelines and a DataLoader epoch on
 * the given files and prints one JSON object of SHA-1 digests. Run once with the native image kernels
 * and once with GOODSREC_NATIVE_IMAGE=0 (sharp + TypeScript); the digests must match.
 *
 * Usage: node pipeline-digest.js FOLDER_DATASET FILE...
 */
import { createHash } from 'node:crypto';
import {
  DataLoader,
  RAND_INCREASING_TRANSFORMS,
  RAND_TRANSFORMS,
  applyAugStep,
  decodeImage,
  nativeImage,
  processFile,
  readFolderDataset,
  type AugOpName,
  type PipelineConfig,
} from '../../src/data/index.js';
import { AUGMENT, recipeEval, recipeTrain } from './recipe.js';

const [root, ...files] = process.argv.slice(2);
const sha = (d: ArrayBufferView) =>
  createHash('sha1')
    .update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength))
    .digest('hex');

const pipelines: Record<string, PipelineConfig> = {
  train: recipeTrain({ input: { size: 112 } }),
  trainExact: { ...recipeTrain({ input: { size: 112 } }), exact: true },
  trainAutoAugment: recipeTrain({ input: { size: 96 }, augment: { autoAugment: AUGMENT.autoaugment } }),
  trainRandAugment: recipeTrain({ input: { size: 96 }, augment: { autoAugment: AUGMENT.randaugment } }),
  hue: {
    ops: [
      { op: 'letterbox', size: 128, fill: [10, 20, 30] },
      { op: 'randomResizedCrop', size: [96, 80] },
      { op: 'colorJitter', brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.2 },
      { op: 'normalize', mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] },
    ],
  },
  eval: recipeEval({ input: { size: 96 } }),
  shorter: {
    ops: [
      { op: 'resize', size: 100 },
      { op: 'centerCrop', size: 90 },
      { op: 'hflip', p: 1 },
      { op: 'normalize', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    ],
  },
  uint8: { ...recipeTrain({ input: { size: 64 }, augment: { cutout: 0 } }), output: 'uint8' },
};

const out: Record<string, string | boolean> = { native: nativeImage() !== null };
for (const f of files) out[`decode ${f.split('/').pop()}`] = sha((await decodeImage(f)).data);
for (const [name, cfg] of Object.entries(pipelines)) {
  const h = createHash('sha1');
  for (let i = 0; i < files.length; i++) {
    for (const seed of [1, 2, 3]) h.update(sha((await processFile(files[i]!, cfg, seed * 1000 + i)).data));
  }
  out[`pipeline ${name}`] = h.digest('hex');
}
// Every AutoAugment / RandAugment op, both argument signs, three magnitudes, on every image.
const ops: AugOpName[] = [
  ...new Set([
    ...RAND_TRANSFORMS,
    ...RAND_INCREASING_TRANSFORMS,
    'PosterizeOriginal',
    'TranslateX',
    'TranslateY',
  ] as AugOpName[]),
];
const augHash = createHash('sha1');
for (const f of files) {
  const img = await decodeImage(f);
  for (const name of ops) {
    for (const [magnitude, sign] of [
      [2, 1],
      [6, -1],
      [9, 1],
    ] as const) {
      const arg = /Rotate|Shear|Translate/.test(name)
        ? sign * (name.startsWith('Translate') ? magnitude * 4 : name === 'Rotate' ? magnitude * 3 : magnitude * 0.03)
        : /Posterize/.test(name)
          ? magnitude % 8
          : /Solarize/.test(name)
            ? magnitude * 25
            : magnitude * 0.2;
      const out = applyAugStep(
        { ...img, data: new Uint8Array(img.data) },
        { name, applied: true, magnitude, arg },
        [120, 121, 122],
      );
      augHash.update(sha(out.data));
    }
  }
}
out['augment ops'] = augHash.digest('hex');
const loader = new DataLoader({
  dataset: readFolderDataset(root!),
  pipeline: pipelines['train']!,
  batchSize: 5,
  seed: 7,
  workers: 2,
});
const h = createHash('sha1');
for await (const b of loader) h.update(sha(b.data)).update(sha(b.labels));
await loader.close();
out['loader epoch'] = h.digest('hex');
console.log(JSON.stringify(out));
