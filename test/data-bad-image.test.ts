/**
 * A bad file's reason comes from facts of its own bytes (src/data/bad-image.ts), never from libvips'
 * process-wide error buffer: the same file gets the same reason however many photos are decoded beside it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  BadImageError,
  DataLoader,
  classifyBadImage,
  decodeBuffer,
  jpegHasEndMarker,
  nativeImage,
  parseCsv,
  readFolderDataset,
  sniffFormat,
} from '../src/data/index.js';
import { recipeEval } from './helpers/recipe.js';
import { GROCERY, groceryAvailable, tmpDir } from './data-helpers.js';

function groceryJpeg(i: number): Buffer {
  assert.ok(groceryAvailable(), `grocery-store dataset not found at ${GROCERY}`);
  const rows = parseCsv(readFileSync(join(GROCERY, 'dataset', 'train.txt'), 'utf8'));
  return readFileSync(join(GROCERY, 'dataset', rows[i]![0]!.trim()));
}

const good = groceryJpeg(10);
const truncated = good.subarray(0, Math.floor(good.length * 0.6));
/** Damaged entropy data, end marker intact: libjpeg warns, libvips decodes it anyway (and writes its buffer). */
const damaged = Buffer.from(good);
for (let i = Math.floor(damaged.length * 0.5); i < Math.floor(damaged.length * 0.5) + 400; i++) damaged[i] = 0xff;
/** An SOF with a zero height: libjpeg refuses the header; the end marker is intact. */
function badHeader(): Buffer {
  const b = Buffer.from(good);
  for (let p = 2; p + 9 < b.length; ) {
    const m = b[p + 1]!;
    const len = b.readUInt16BE(p + 2);
    if (m >= 0xc0 && m <= 0xc2) {
      b.writeUInt16BE(0, p + 5);
      return b;
    }
    p += 2 + len;
  }
  throw new Error('no SOF found');
}

const reasonOf = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'ok',
    (e) => (e instanceof BadImageError ? e.reason : `threw ${(e as Error).message}`),
  );

test('bad-file reasons from the bytes: each kind, and the fact flipped flips the reason (negative control)', async () => {
  const max = 1e8;
  const reason = async (b: Uint8Array) => (await classifyBadImage('x', b, { maxPixels: max })).reason;
  assert.equal(await reason(new Uint8Array(0)), 'empty');
  assert.equal(await reason(Buffer.from('just some text, not a photo at all')), 'not-an-image');
  const bmp = Buffer.alloc(64);
  bmp.write('BM', 0, 'latin1');
  assert.equal(sniffFormat(bmp), 'bmp');
  assert.equal(await reason(bmp), 'not-an-image', 'BMP: a format libvips does not read here');
  // Cut anywhere after the header: truncated; the same bytes with an end marker put back: not truncated.
  for (const f of [0.2, 0.5, 0.8, 0.95, 0.999]) {
    const cut = good.subarray(0, Math.floor(good.length * f));
    assert.equal(jpegHasEndMarker(cut), false, `cut at ${f}`);
    assert.equal(await reason(cut), 'truncated', `cut at ${f}`);
    const closed = Buffer.concat([cut, Buffer.from([0xff, 0xd9])]);
    assert.equal(jpegHasEndMarker(closed), true, `closed at ${f}`);
    if (nativeImage()) assert.equal(await reason(closed), 'corrupt', `cut at ${f} with its end marker restored`);
  }
  assert.equal(jpegHasEndMarker(good), true);
  assert.equal(await reason(badHeader()), 'corrupt');
  assert.equal(await reason(damaged), 'corrupt');
  // Over the pixel limit, read from the header.
  assert.equal((await classifyBadImage('x', good, { maxPixels: 1000 })).reason, 'too-large');
  // PNG: cut before IEND is truncated; intact chunks with damaged pixel data are corrupt.
  const png = await sharp(good).resize(64, 48).png().toBuffer();
  assert.equal(await reason(png.subarray(0, png.length - 30)), 'truncated');
  const pngBad = Buffer.from(png);
  for (let i = 60; i < 90; i++) pngBad[i] = 0x5a;
  assert.equal(await reason(pngBad), 'corrupt');
});

test('stress: truncated, damaged and bad-header JPEGs and a truncated PNG decoded concurrently keep their reasons', async () => {
  const png = await sharp(good).resize(64, 48).png().toBuffer();
  const pngCut = png.subarray(0, png.length - 30);
  const header = badHeader();
  const seen = new Map<string, number>();
  for (let round = 0; round < 60; round++) {
    const r = await Promise.all([
      reasonOf(decodeBuffer(truncated, 't.jpg')),
      reasonOf(decodeBuffer(damaged, 'd.jpg')),
      reasonOf(decodeBuffer(truncated, 't2.jpg', { alpha: 'white' })),
      reasonOf(decodeBuffer(header, 'h.jpg')),
      reasonOf(decodeBuffer(pngCut, 'p.png')),
      reasonOf(
        decodeBuffer(damaged, 'd2.jpg', { resize: { width: 32, height: 32, fit: 'fill', background: [0, 0, 0] } }),
      ),
      reasonOf(
        decodeBuffer(truncated, 't3.jpg', { resize: { width: 32, height: 32, fit: 'contain', background: [0, 0, 0] } }),
      ),
    ]);
    const key = r.join(',');
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  assert.equal(seen.size, 1, `one outcome for every round, got ${JSON.stringify([...seen])}`);
  const [t, , t2, h, p, , t3] = [...seen.keys()][0]!.split(',');
  assert.deepEqual([t, t2, h, p, t3], ['truncated', 'truncated', 'corrupt', 'truncated', 'truncated']);
});

test('stress: a folder of truncated and damaged photos through the loader, 0 and 2 workers, same reasons every time', async () => {
  const root = tmpDir('bad-stress');
  const dir = join(root, 'train', 'cls');
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < 12; i++) {
    writeFileSync(join(dir, `t${i}_truncated.jpg`), truncated);
    writeFileSync(join(dir, `d${i}_damaged.jpg`), damaged);
    writeFileSync(join(dir, `h${i}_header.jpg`), badHeader());
  }
  const ds = readFolderDataset(root);
  for (const workers of [0, 2]) {
    for (let rep = 0; rep < 3; rep++) {
      const loader = new DataLoader({
        dataset: ds,
        pipeline: recipeEval({ input: { size: 32 } }),
        batchSize: 8,
        mode: 'eval',
        workers,
      });
      for await (const _ of loader) {
        /* drain */
      }
      await loader.close();
      const byKind = new Map<string, Set<string>>();
      for (const b of loader.badFiles) {
        const kind = b.path.split('_').pop()!;
        byKind.set(kind, (byKind.get(kind) ?? new Set()).add(b.reason));
      }
      assert.deepEqual([...(byKind.get('truncated.jpg') ?? [])], ['truncated'], `workers ${workers}`);
      assert.deepEqual([...(byKind.get('header.jpg') ?? [])], ['corrupt'], `workers ${workers}`);
      assert.equal(loader.badFiles.filter((b) => b.path.includes('truncated')).length, 12, `workers ${workers}`);
    }
  }
});
