/**
 * The data loader's native image kernels (native/image, src/data/native-image.ts): the same pixels as the
 * sharp + TypeScript path, windowed JPEG decoding equal to a full decode, EXIF orientation, bad files
 * still classified, shared batch buffers compacted around bad files, and DCT-scaled decoding close to
 * full decoding.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  DataLoader,
  parseCsv,
  decodeJpegNative,
  nativeImage,
  processBuffer,
  readFolderDataset,
  type PipelineConfig,
} from '../src/data/index.js';
import { recipeEval, recipeTrain } from './helpers/recipe.js';
import { GROCERY, REPO, diffStats, groceryAvailable, tmpDir } from './data-helpers.js';

const native = nativeImage();

function groceryJpeg(i: number): Buffer {
  assert.ok(groceryAvailable(), `grocery-store dataset not found at ${GROCERY}`);
  const rows = parseCsv(readFileSync(join(GROCERY, 'dataset', 'train.txt'), 'utf8'));
  return readFileSync(join(GROCERY, 'dataset', rows[i]![0]!.trim()));
}

/** JPEGs covering the decoder's cases: sizes, subsampling, progressive, grayscale, every EXIF orientation. */
async function jpegVariants(): Promise<{ name: string; buf: Buffer }[]> {
  const base = groceryJpeg(500);
  const v = [
    { name: 'grocery-348', buf: base },
    {
      name: 'progressive',
      buf: await sharp(base).resize(611, 437).jpeg({ quality: 90, progressive: true }).toBuffer(),
    },
    {
      name: '444',
      buf: await sharp(base).resize(501, 333).jpeg({ quality: 90, chromaSubsampling: '4:4:4' }).toBuffer(),
    },
    { name: 'gray', buf: await sharp(base).resize(300, 410).grayscale().jpeg({ quality: 90 }).toBuffer() },
    {
      name: 'large-progressive-o6',
      buf: await sharp(base)
        .resize(1500, 1100)
        .jpeg({ quality: 90, progressive: true })
        .withMetadata({ orientation: 6 })
        .toBuffer(),
    },
  ];
  for (let o = 1; o <= 8; o++)
    v.push({
      name: `orientation-${o}`,
      buf: await sharp(base).resize(333, 250).jpeg({ quality: 92 }).withMetadata({ orientation: o }).toBuffer(),
    });
  return v;
}

test('the native image kernels are built and load', () => {
  assert.ok(native, 'build/Release/goodsrec_image.node is missing or failed to load (scripts/setup.sh builds it)');
});

test('native kernels give the same pixels as sharp + TypeScript: decoding, eight pipelines, every augment op, a loader epoch', async () => {
  const root = tmpDir('native-digest');
  const dir = join(root, 'train', 'a');
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const base = groceryJpeg(100);
  const add = async (name: string, buf: Buffer | Promise<Buffer>) => {
    const p = join(dir, name);
    writeFileSync(p, await buf);
    files.push(p);
  };
  await add('square.jpg', base);
  await add('landscape.jpg', groceryJpeg(2000));
  await add('portrait.jpg', sharp(base).resize(300, 470).jpeg({ quality: 90 }).toBuffer());
  await add(
    'rotated6.jpg',
    sharp(base).resize(300, 200).jpeg({ quality: 90 }).withMetadata({ orientation: 6 }).toBuffer(),
  );
  await add('progressive.jpg', sharp(base).resize(257, 199).jpeg({ quality: 85, progressive: true }).toBuffer());
  await add('odd.png', sharp(base).resize(171, 233).png().toBuffer());
  const script = join(REPO, 'dist', 'test', 'helpers', 'pipeline-digest.js');
  const run = (env: NodeJS.ProcessEnv) =>
    JSON.parse(
      execFileSync(process.execPath, [script, root, ...files], { env: { ...process.env, ...env }, encoding: 'utf8' }),
    ) as Record<string, string | boolean>;
  const nat = run({});
  const ts = run({ GOODSREC_NATIVE_IMAGE: '0' });
  assert.equal(nat['native'], true, 'the first run should use the native kernels');
  assert.equal(ts['native'], false, 'GOODSREC_NATIVE_IMAGE=0 should disable them');
  delete nat['native'];
  delete ts['native'];
  assert.ok(
    Object.keys(nat).length >= 16,
    `expected digests for 6 decodes, 8 pipelines, the augment ops and the loader, got ${Object.keys(nat).join(', ')}`,
  );
  assert.deepEqual(nat, ts);
});

test('windowed JPEG decoding equals the same window of a full decode (scales, orientations, padding)', async () => {
  assert.ok(native);
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  let windows = 0;
  for (const { name, buf } of await jpegVariants()) {
    for (const d of [1, 2, 4, 8]) {
      const full = native.decodeJpeg(buf, d, 1e9);
      assert.equal(full.status, 'ok', `${name}: full decode at 1/${d}`);
      if (full.status !== 'ok') continue;
      for (let t = 0; t < 6; t++) {
        const w: number = 1 + Math.floor(rnd() * full.width * 1.2),
          h: number = 1 + Math.floor(rnd() * full.height * 1.2);
        const x0: number = Math.floor(rnd() * (full.width + 20)) - 10 - Math.floor(w / 3),
          y0: number = Math.floor(rnd() * (full.height + 20)) - 10 - Math.floor(h / 3);
        const r = native.decodeJpeg(buf, d, 1e9, [x0, y0, w, h, 7, 8, 9]);
        assert.equal(r.status, 'ok');
        if (r.status !== 'ok') continue;
        assert.deepEqual([r.width, r.height], [w, h]);
        let bad = 0;
        for (let y = 0; y < h; y++)
          for (let x = 0; x < w; x++)
            for (let c = 0; c < 3; c++) {
              const X = x0 + x,
                Y = y0 + y;
              const want =
                X < 0 || Y < 0 || X >= full.width || Y >= full.height
                  ? 7 + c
                  : full.data[(Y * full.width + X) * 3 + c]!;
              if (r.data[(y * w + x) * 3 + c] !== want) bad++;
            }
        assert.equal(bad, 0, `${name} at 1/${d}, window ${[x0, y0, w, h]}: ${bad} values differ from the full decode`);
        windows++;
      }
    }
  }
  assert.equal(windows, 13 * 4 * 6);
});

test('EXIF orientations 1-8: the native decoder turns images like sharp/libvips', async () => {
  for (const { name, buf } of (await jpegVariants()).filter((v) => v.name.startsWith('orientation'))) {
    const mine = decodeJpegNative(buf, 1);
    assert.ok(mine, `${name}: native decode`);
    const { data, info } = await sharp(buf).rotate().removeAlpha().raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([mine.width, mine.height], [info.width, info.height], name);
    const d = diffStats(mine.data, data);
    assert.ok(d.maxAbs <= 1 && d.meanAbs < 0.01, `${name}: ${JSON.stringify(d)}`);
  }
});

test('fused train pipeline straight from JPEG: bad files still reported, batches compacted around them', async () => {
  const root = tmpDir('native-bad');
  const dir = join(root, 'train', 'cls');
  mkdirSync(dir, { recursive: true });
  const good = groceryJpeg(10);
  writeFileSync(join(dir, 'a.jpg'), good);
  writeFileSync(join(dir, 'b_truncated.jpg'), good.subarray(0, Math.floor(good.length * 0.6)));
  writeFileSync(join(dir, 'c.jpg'), groceryJpeg(11));
  // Damaged entropy data but an intact end marker: libjpeg warns, the native path steps aside, sharp decides.
  const corrupt = Buffer.from(good);
  for (let i = Math.floor(corrupt.length * 0.5); i < Math.floor(corrupt.length * 0.5) + 400; i++) corrupt[i] = 0xff;
  writeFileSync(join(dir, 'd_corrupt.jpg'), corrupt);
  await sharp(good).toColourspace('cmyk').jpeg({ quality: 90 }).toFile(join(dir, 'e_cmyk.jpg'));
  writeFileSync(join(dir, 'f.jpg'), groceryJpeg(12));
  const pipeline = recipeTrain({ input: { size: 64 } });
  const ds = readFolderDataset(root);
  for (const workers of [0, 2]) {
    const loader = new DataLoader({ dataset: ds, pipeline, batchSize: 6, mode: 'eval', workers });
    const batches = [];
    for await (const b of loader) batches.push(b);
    await loader.close();
    const names = loader.badFiles.map((b) => `${b.path.split('/').pop()}:${b.reason}`).sort();
    assert.ok(names.includes('b_truncated.jpg:truncated'), `workers ${workers}: truncated file reported, got ${names}`);
    const kept = batches.flatMap((b) => [...b.indices].map((i) => ds.samples[i]!.path.split('/').pop()!));
    assert.ok(
      kept.includes('e_cmyk.jpg') && kept.includes('f.jpg') && !kept.includes('b_truncated.jpg'),
      `kept ${kept}`,
    );
    assert.equal(kept.length + loader.badFiles.length, 6);
    // Each kept sample sits where it belongs: equal to processing its file alone with its seed.
    const b = batches[0]!;
    const per = 3 * 64 * 64;
    for (let j = 0; j < b.shape[0]; j++) {
      const idx = b.indices[j]!;
      // Eval mode keeps dataset order: the position of a sample is its index.
      const alone = await processBuffer(
        readFileSync(join(root, ds.samples[idx]!.path)),
        'x',
        pipeline,
        loader.sampleSeed(0, idx, idx),
      );
      assert.equal(
        diffStats(b.data.subarray(j * per, (j + 1) * per), alone.data).maxAbs,
        0,
        `workers ${workers}: sample ${j} (${ds.samples[idx]!.path}) misplaced`,
      );
    }
  }
});

test('fastDecode: DCT-scaled decoding of a large photo stays close to full decoding', async () => {
  const big = await sharp(groceryJpeg(700)).resize(2000, 1500).jpeg({ quality: 92 }).toBuffer();
  const cases: [string, PipelineConfig][] = [
    ['eval letterbox 256 + crop 224', recipeEval()],
    [
      'train letterbox + RRC 224',
      recipeTrain({ input: { size: 224 }, augment: { cutout: 0, colorJitter: 0, hflip: 0 } }),
    ],
  ];
  for (const [name, cfg] of cases) {
    let worst = 0;
    for (let seed = 0; seed < 8; seed++) {
      const exact = await processBuffer(big, 'big.jpg', cfg, seed);
      const fast = await processBuffer(big, 'big.jpg', { ...cfg, fastDecode: true }, seed);
      const d = diffStats(fast.data, exact.data);
      worst = Math.max(worst, d.meanAbs);
    }
    // Stated tolerance: mean |difference| under 0.05 after normalising (about 2.5 levels of 255).
    assert.ok(worst < 0.05, `${name}: fastDecode mean difference ${worst.toFixed(4)}`);
    assert.ok(worst > 0, `${name}: fastDecode should have decoded this photo at reduced size`);
  }
});
