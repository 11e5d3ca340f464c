/** Dataset readers, subsets, the DataLoader (exactly-once eval, shuffles, resume, balance) and bad files. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, readFileSync, statSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import {
  readFolderDataset,
  readManifestDataset,
  readGoodsrecManifest,
  loadDataset,
  subsetDataset,
  selectSplits,
  classCounts,
  DataLoader,
  decodeImage,
  BadImageError,
  compareCodePoints,
  type Batch,
  type PipelineConfig,
  type Dataset,
} from '../src/data/index.js';
import { GROCERY, REPO, tmpDir, groceryAvailable } from './data-helpers.js';

const CLASSES = ['可口可乐（罐装）330ml', 'Apple Juice', 'ｚ full width', 'Ärla milk'];

/** root/<split>/<class>/<img>: train has 3 classes (imbalanced), test has a 4th class train lacks. */
async function makeFolderDataset(): Promise<string> {
  const root = tmpDir('folder');
  const layout: [string, string, number][] = [
    ['train', CLASSES[0]!, 12],
    ['train', CLASSES[1]!, 4],
    ['train', CLASSES[2]!, 3],
    ['test', CLASSES[1]!, 2],
    ['test', CLASSES[3]!, 3],
  ];
  let n = 0;
  for (const [split, cls, count] of layout) {
    mkdirSync(join(root, split, cls), { recursive: true });
    for (let i = 0; i < count; i++, n++) {
      const w = 30 + (n % 5) * 4,
        h = 24 + (n % 3) * 6;
      await sharp({
        create: {
          width: w,
          height: h,
          channels: 3,
          background: { r: (n * 37) & 255, g: (n * 91) & 255, b: (n * 53) & 255 },
        },
      })
        .jpeg({ quality: 90 })
        .toFile(join(root, split, cls, `img_${i}.jpg`));
    }
  }
  writeFileSync(join(root, 'train', 'README.txt'), 'not an image, ignored by extension');
  return root;
}

const SMALL: PipelineConfig = {
  ops: [
    { op: 'letterbox', size: 32 },
    { op: 'randomResizedCrop', size: 24 },
    { op: 'hflip' },
    { op: 'colorJitter', brightness: 0.4, contrast: 0.4, saturation: 0.4 },
    { op: 'normalize', mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
    { op: 'cutout', length: 6 },
  ],
};
const EVAL: PipelineConfig = {
  ops: [
    { op: 'letterbox', size: 28 },
    { op: 'centerCrop', size: 24 },
    { op: 'normalize', mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
  ],
};

async function collect(it: AsyncIterable<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of it) out.push(b);
  return out;
}
const hashBatch = (b: Batch) =>
  createHash('sha1')
    .update(new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength))
    .update(new Uint8Array(b.indices.buffer))
    .digest('hex');

test('folder dataset: one class index for all splits, sorted by code point, Unicode names', async () => {
  const root = await makeFolderDataset();
  const ds = readFolderDataset(root);
  assert.deepEqual(ds.classes, [...CLASSES].sort(compareCodePoints));
  assert.equal(ds.samples.length, 24);
  for (const s of ds.samples) assert.equal(ds.classes[s.label], s.path.split('/')[1]);
  // The class only in 'test' still has its index; the train-only view keeps all classes.
  const train = selectSplits(ds, 'train');
  assert.equal(train.classes.length, 4);
  assert.deepEqual(
    classCounts(train),
    ds.classes.map(
      (c) => (({ [CLASSES[0]!]: 12, [CLASSES[1]!]: 4, [CLASSES[2]!]: 3 }) as Record<string, number>)[c] ?? 0,
    ),
  );
  assert.deepEqual(loadDataset(root), ds);
  // Code point order differs from UTF-16 order above U+FFFF.
  assert.ok(compareCodePoints('\u{1F600}', '\uFF5A') > 0 && '\u{1F600}' < '\uFF5A');
});

test('manifest readers: grocery-store layout and goodsrec JSON/CSV', async () => {
  assert.ok(groceryAvailable(), `grocery-store dataset not found at ${GROCERY}`);
  const ds = readManifestDataset(GROCERY);
  assert.equal(ds.classes.length, 81);
  assert.deepEqual([...ds.classes].sort(compareCodePoints), ds.classes);
  const counts = new Map<string, number>();
  for (const s of ds.samples) counts.set(s.split, (counts.get(s.split) ?? 0) + 1);
  assert.deepEqual(Object.fromEntries(counts), { test: 2485, train: 2640, val: 296 });
  const first = ds.samples.find((s) => s.path.endsWith('Golden-Delicious_001.jpg'))!;
  assert.equal(ds.classes[first.label], 'Golden-Delicious');
  assert.ok(statSync(join(ds.root, first.path)).isFile());

  const dir = tmpDir('manifest');
  const root = await makeFolderDataset();
  const folder = readFolderDataset(root);
  const json = {
    samples: folder.samples.map((s) => ({ path: join(root, s.path), class: folder.classes[s.label], split: s.split })),
  };
  writeFileSync(join(dir, 'm.json'), JSON.stringify(json));
  const fromJson = readGoodsrecManifest(join(dir, 'm.json'));
  assert.deepEqual(fromJson.classes, folder.classes);
  assert.deepEqual(
    fromJson.samples.map((s) => s.label),
    folder.samples.map((s) => s.label),
  );
  const csv = ['path,class,split', ...json.samples.map((s) => `"${s.path}","${s.class}",${s.split}`)].join('\n');
  writeFileSync(join(dir, 'm.csv'), csv);
  assert.deepEqual(readGoodsrecManifest(join(dir, 'm.csv')).samples, fromJson.samples);
  writeFileSync(join(dir, 'bad.json'), JSON.stringify({ classes: ['a'], samples: [{ path: 'x.jpg', class: 'b' }] }));
  assert.throws(() => readGoodsrecManifest(join(dir, 'bad.json')), /class 'b' of x\.jpg is not in 'classes'/);
});

test('subsets: stratified fraction and class selection, deterministic from the seed', async () => {
  const ds = readManifestDataset(GROCERY);
  const half = subsetDataset(ds, { fraction: 0.5, seed: 1 });
  assert.deepEqual(subsetDataset(ds, { fraction: 0.5, seed: 1 }), half);
  assert.notDeepEqual(subsetDataset(ds, { fraction: 0.5, seed: 2 }).samples, half.samples);
  const full = classCounts(ds, 'train'),
    sub = classCounts(half, 'train');
  full.forEach((n, c) => assert.equal(sub[c], n === 0 ? 0 : Math.max(1, Math.round(n / 2)), `class ${ds.classes[c]}`));
  const two = subsetDataset(ds, { classes: ['Yellow-Onion', 'Banana'] });
  assert.deepEqual(two.classes, ['Banana', 'Yellow-Onion']);
  assert.ok(
    two.samples.every((s) => two.classes[s.label] === ds.classes[ds.samples.find((t) => t.path === s.path)!.label]),
  );
});

test('loader eval mode: every sample exactly once, last partial batch kept, same with and without workers', async () => {
  const ds = readFolderDataset(await makeFolderDataset());
  const a = new DataLoader({ dataset: ds, pipeline: EVAL, batchSize: 5, mode: 'eval', workers: 2 });
  const b = new DataLoader({ dataset: ds, pipeline: EVAL, batchSize: 5, mode: 'eval', workers: 0 });
  const ba = await collect(a),
    bb = await collect(b);
  await a.close();
  assert.deepEqual(
    ba.map((x) => x.shape),
    [
      [5, 3, 24, 24],
      [5, 3, 24, 24],
      [5, 3, 24, 24],
      [5, 3, 24, 24],
      [4, 3, 24, 24],
    ],
  );
  const seen = ba.flatMap((x) => [...x.indices]);
  assert.deepEqual(
    seen,
    ds.samples.map((_, i) => i),
  );
  assert.deepEqual(
    ba.flatMap((x) => [...x.labels]),
    ds.samples.map((s) => s.label),
  );
  assert.deepEqual(ba.map(hashBatch), bb.map(hashBatch));
  assert.deepEqual(a.state(), { epoch: 1, step: 0 });
});

test('loader train mode: per-epoch shuffles, reproducible, exact resume, dropLast, uint8 output', async () => {
  const ds = readFolderDataset(await makeFolderDataset());
  const mk = (o: Partial<ConstructorParameters<typeof DataLoader>[0]> = {}) =>
    new DataLoader({ dataset: ds, pipeline: SMALL, batchSize: 4, seed: 42, dropLast: true, workers: 2, ...o });
  const l1 = mk();
  const e0 = await collect(l1),
    e1 = await collect(l1);
  assert.equal(e0.length, 6);
  assert.ok(e0.every((b) => b.shape[0] === 4));
  assert.deepEqual(l1.state(), { epoch: 2, step: 0 });
  const order0 = e0.flatMap((b) => [...b.indices]),
    order1 = e1.flatMap((b) => [...b.indices]);
  assert.deepEqual(
    [...order0].sort((x, y) => x - y),
    ds.samples.map((_, i) => i),
  );
  assert.notDeepEqual(order0, order1);
  // Same seed, fresh loader, different worker count: identical batches.
  const l2 = mk({ workers: 1 });
  assert.deepEqual((await collect(l2)).map(hashBatch), e0.map(hashBatch));
  // Resume in the middle of epoch 1 sees exactly the remaining batches.
  const l3 = mk({ workers: 0, start: { epoch: 1, step: 3 } });
  assert.deepEqual((await collect(l3)).map(hashBatch), e1.slice(3).map(hashBatch));
  // Stop early, read state, resume from it in a new loader.
  const l4 = mk();
  const it = l4[Symbol.asyncIterator]();
  await it.next();
  await it.next();
  await it.return?.();
  assert.deepEqual(l4.state(), { epoch: 0, step: 2 });
  const l5 = mk({ start: l4.state() });
  assert.deepEqual((await collect(l5)).map(hashBatch), e0.slice(2).map(hashBatch));
  // Different seed, different order.
  assert.notDeepEqual(
    (await collect(mk({ seed: 43 }))).flatMap((b) => [...b.indices]),
    order0,
  );
  const u8 = await collect(
    new DataLoader({ dataset: ds, pipeline: { ...EVAL, output: 'uint8' }, batchSize: 24, mode: 'eval', workers: 0 }),
  );
  assert.deepEqual(u8[0]!.shape, [24, 24, 24, 3]);
  assert.ok(u8[0]!.data instanceof Uint8Array && u8[0]!.layout === 'NHWC');
  await Promise.all([l1, l2, l4, l5].map((l) => l.close()));
});

test('batches are written into shared buffers; reuseBuffers recycles them without changing a byte', async () => {
  const ds = readFolderDataset(await makeFolderDataset());
  const mk = (reuseBuffers: boolean) =>
    new DataLoader({
      dataset: ds,
      pipeline: SMALL,
      batchSize: 2,
      seed: 3,
      dropLast: true,
      workers: 2,
      prefetch: 2,
      reuseBuffers,
    });
  const plain = mk(false),
    reuse = mk(true);
  const want = (await collect(plain)).map(hashBatch);
  assert.ok(want.length >= 9);
  const got: string[] = [];
  const buffers = new Set<ArrayBufferLike>();
  for await (const b of reuse) {
    assert.ok(b.data.buffer instanceof SharedArrayBuffer, 'a fixed-size pipeline fills shared batch buffers');
    buffers.add(b.data.buffer);
    got.push(hashBatch(b)); // used up before the next batch is requested, as reuseBuffers requires
  }
  assert.deepEqual(got, want);
  // prefetch 2: at most the batch in hand, two prepared ahead and one spare ever exist.
  assert.ok(buffers.size <= 4, `${buffers.size} distinct batch buffers for ${got.length} batches`);
  await Promise.all([plain.close(), reuse.close()]);
});

test('class-balanced sampler draws classes uniformly', async () => {
  const ds = selectSplits(readFolderDataset(await makeFolderDataset()), 'train'); // 12 / 4 / 3 images
  const l = new DataLoader({
    dataset: ds,
    pipeline: EVAL,
    batchSize: 19,
    sampler: 'class-balanced',
    seed: 1,
    workers: 0,
  });
  const counts = new Map<number, number>();
  for (let e = 0; e < 300; e++)
    for (const i of l.epochOrder(e)) counts.set(ds.samples[i]!.label, (counts.get(ds.samples[i]!.label) ?? 0) + 1);
  const total = 300 * 19;
  assert.equal(counts.size, 3);
  for (const [, c] of counts) assert.ok(Math.abs(c / total - 1 / 3) < 0.02, `class share ${c / total}`);
});

/** A PNG whose header claims 30000x30000 (a decompression bomb); the rest is junk. */
function bombPng(): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(30000, 0);
  ihdr.writeUInt32BE(30000, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    chunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00])),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

test('bad and unusual files: each outcome, loader skip/fail policies, dataset untouched', async () => {
  const root = tmpDir('bad');
  const dir = join(root, 'train', 'cls');
  mkdirSync(dir, { recursive: true });
  const good = await sharp({ create: { width: 40, height: 20, channels: 3, background: '#336699' } })
    .jpeg()
    .toBuffer();
  writeFileSync(join(dir, 'a_good.jpg'), good);
  writeFileSync(join(dir, 'truncated.jpg'), good.subarray(0, Math.floor(good.length / 2)));
  writeFileSync(join(dir, 'zero.jpg'), Buffer.alloc(0));
  writeFileSync(join(dir, 'text.jpg'), 'hello, I am not a JPEG\n');
  writeFileSync(join(dir, 'bomb.png'), bombPng());
  await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 200, g: 40, b: 10 } } })
    .toColourspace('cmyk')
    .jpeg({ quality: 95 })
    .toFile(join(dir, 'cmyk.jpg'));
  const px16 = new Uint16Array(8 * 8 * 3);
  for (let i = 0; i < px16.length; i += 3) {
    px16[i] = 65535;
    px16[i + 1] = 32896;
    px16[i + 2] = 0;
  }
  await sharp(px16, { raw: { width: 8, height: 8, channels: 3 } })
    .toColourspace('rgb16')
    .png()
    .toFile(join(dir, 'deep16.png'));
  await sharp(Buffer.alloc(10 * 6, 90), { raw: { width: 10, height: 6, channels: 1 } })
    .png()
    .toFile(join(dir, 'gray.png'));
  await sharp({ create: { width: 10, height: 6, channels: 4, background: { r: 10, g: 200, b: 30, alpha: 0.5 } } })
    .png()
    .toFile(join(dir, 'alpha.png'));
  await sharp({ create: { width: 10, height: 6, channels: 3, background: { r: 250, g: 0, b: 0 } } })
    .png({ palette: true, colours: 4 })
    .toFile(join(dir, 'palette.png'));
  // Left half red, right half blue, stored with EXIF orientation 6 (display rotated 90 degrees clockwise).
  const lr = Buffer.alloc(40 * 20 * 3);
  for (let y = 0; y < 20; y++)
    for (let x = 0; x < 40; x++) lr.set(x < 20 ? [255, 0, 0] : [0, 0, 255], (y * 40 + x) * 3);
  await sharp(lr, { raw: { width: 40, height: 20, channels: 3 } })
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toFile(join(dir, 'exif6.jpg'));

  const before = new Map(
    readdirSync(dir).map((f) => [
      f,
      createHash('sha1')
        .update(readFileSync(join(dir, f)))
        .digest('hex') + statSync(join(dir, f)).mtimeMs,
    ]),
  );
  const expectBad = async (f: string, reason: string) => {
    await assert.rejects(
      decodeImage(join(dir, f)),
      (e: unknown) => e instanceof BadImageError && e.reason === reason && e.message.includes(f),
      `${f} should be rejected as ${reason}`,
    );
  };
  await expectBad('truncated.jpg', 'truncated');
  await expectBad('zero.jpg', 'empty');
  await expectBad('text.jpg', 'not-an-image');
  await expectBad('bomb.png', 'too-large');
  await expectBad('missing.jpg', 'unreadable');
  const px = async (f: string) => {
    const im = await decodeImage(join(dir, f));
    return { im, p: [...im.data.subarray(0, 3)] };
  };
  const cmyk = await px('cmyk.jpg');
  assert.equal(cmyk.im.data.length, 16 * 16 * 3);
  assert.ok(Math.abs(cmyk.p[0]! - 200) < 25 && cmyk.p[1]! < 80 && cmyk.p[2]! < 60, `CMYK converted to RGB ${cmyk.p}`);
  assert.deepEqual((await px('deep16.png')).p, [255, 128, 0]);
  assert.deepEqual((await px('gray.png')).p, [90, 90, 90]);
  assert.deepEqual((await px('alpha.png')).p, [10, 200, 30]);
  assert.deepEqual((await px('palette.png')).p, [250, 0, 0]);
  const ex = await decodeImage(join(dir, 'exif6.jpg'));
  assert.deepEqual([ex.width, ex.height], [20, 40], 'EXIF orientation applied');
  const at = (x: number, y: number) => [...ex.data.subarray((y * 20 + x) * 3, (y * 20 + x) * 3 + 3)];
  assert.ok(at(10, 5)[0]! > 200 && at(10, 5)[2]! < 60, `top should be red, got ${at(10, 5)}`);
  assert.ok(at(10, 35)[2]! > 200 && at(10, 35)[0]! < 60, `bottom should be blue, got ${at(10, 35)}`);

  const ds = readFolderDataset(root);
  const skip = new DataLoader({
    dataset: ds,
    pipeline: EVAL,
    batchSize: 4,
    mode: 'eval',
    workers: 2,
    onBadFile: 'skip',
  });
  const batches = await collect(skip);
  await skip.close();
  assert.equal(
    batches.reduce((a, b) => a + b.shape[0], 0),
    ds.samples.length - 4,
  );
  assert.deepEqual(skip.badFiles.map((b) => [b.path.split('/').pop(), b.reason]).sort(), [
    ['bomb.png', 'too-large'],
    ['text.jpg', 'not-an-image'],
    ['truncated.jpg', 'truncated'],
    ['zero.jpg', 'empty'],
  ]);
  const fail = new DataLoader({
    dataset: ds,
    pipeline: EVAL,
    batchSize: 4,
    mode: 'eval',
    workers: 0,
    onBadFile: 'fail',
  });
  await assert.rejects(collect(fail), /bomb\.png: too-large/);
  const after = new Map(
    readdirSync(dir).map((f) => [
      f,
      createHash('sha1')
        .update(readFileSync(join(dir, f)))
        .digest('hex') + statSync(join(dir, f)).mtimeMs,
    ]),
  );
  assert.deepEqual(after, before, 'the dataset folder must not change');
});

export type { Dataset };

test('closing a loader while its workers decode never aborts the process (20 open/read/close cycles)', async () => {
  // Workers terminated inside a native decode used to abort node ("terminate called after throwing an
  // instance of 'Napi::Error'", about 1 close in 8): napi_throw fails in a terminating worker and the
  // C++ wrapper rethrew; and `await close()` could end the process with exit code 13 (nothing held the
  // event loop while workers terminated). Many large photos keep the workers busy at the moment of close().
  const root = tmpDir('close');
  for (let i = 0; i < 48; i++) {
    const dir = join(root, 'train', `c${i % 3}`);
    mkdirSync(dir, { recursive: true });
    const noise = Buffer.alloc(1200 * 900 * 3);
    for (let k = 0; k < noise.length; k++) noise[k] = (k * 2654435761 + i * 97) >>> 24;
    await sharp(noise, { raw: { width: 1200, height: 900, channels: 3 } })
      .jpeg({ quality: 90 })
      .toFile(join(dir, `${i}.jpg`));
  }
  const child = `
    const { DataLoader, readFolderDataset } = await import(${JSON.stringify(join(REPO, 'dist', 'src', 'data', 'index.js'))});
    const ds = readFolderDataset(${JSON.stringify(root)});
    const pipeline = { ops: [{ op: 'letterbox', fill: 'black' }, { op: 'randomResizedCrop', size: 64 },
      { op: 'normalize', mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }], fastDecode: false };
    let cycles = 0;
    for (let c = 0; c < 20; c++) {
      const loader = new DataLoader({ dataset: ds, pipeline, batchSize: 4, mode: 'train', seed: c, workers: 4 });
      for await (const b of loader) { if (b.labels.length !== 4) throw new Error('short batch'); break; }
      await loader.close();
      cycles++;
    }
    console.log('cycles ' + cycles);`;
  // A script file, not --input-type/-e: the loader's worker threads inherit the process's execArgv.
  writeFileSync(join(root, 'child.mjs'), child);
  const r = spawnSync(process.execPath, [join(root, 'child.mjs')], { encoding: 'utf8' });
  assert.equal(r.status, 0, `exit ${r.status} ${r.signal ?? ''}: ${r.stderr.slice(-800)}`);
  assert.match(r.stdout, /cycles 20/);
});
