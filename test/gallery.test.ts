// Product gallery: file format (round trip, atomic under SIGKILL), exact search
// against a float64 brute force, open-set metrics, and the CLI end to end on a
// seeded stand-in run: build from a dataset, enrol a class the model never saw,
// predict/eval through the gallery, calibrate, remove, and refuse another model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { makeRun, repoRoot, sample } from './fixres-helpers.js';
import {
  GALLERY_FORMAT,
  readGallery,
  storedRowsOf,
  writeGallery,
  filterGallery,
  type Gallery,
} from '../src/gallery/format.js';
import { ExactIndex } from '../src/gallery/search.js';
import { GalleryMatcher, auroc, thresholdForFar } from '../src/gallery/recognize.js';

const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'goodsrec-gallery-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function unitRows(n: number, d: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const rnd = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let j = 0; j < d; j++) {
      const v = rnd();
      out[i * d + j] = v;
      norm += v * v;
    }
    for (let j = 0; j < d; j++) out[i * d + j]! /= Math.sqrt(norm);
  }
  return out;
}

function fakeGallery(n: number, d: number, seed: number): Gallery {
  return {
    meta: {
      format: GALLERY_FORMAT,
      dim: d,
      k: 3,
      threshold: null,
      model: {
        hash: 'ab'.repeat(32),
        checkpoint: '/x',
        name: 'resnet18',
        embedding: 'pooled',
        preprocess: { size: 32, resize: 'letterbox', cropPct: 0.875, mean: [0, 0, 0], std: [1, 1, 1] },
      },
      entries: Array.from({ length: n }, (_, i) => ({ class: `c${i % 4}`, path: `/p/${i}.jpg` })),
    },
    embeddings: unitRows(n, d, seed),
  };
}

test('gallery file: round trip, remove, and a SIGKILL during rewrites leaves a whole gallery', async () => {
  const path = join(work, 'fmt.gallery');
  const g = fakeGallery(10, 8, 1);
  writeGallery(path, g);
  const back = readGallery(path);
  assert.deepEqual(back.meta, g.meta);
  assert.deepEqual(back.embeddings, g.embeddings);
  const fewer = filterGallery(back, (e) => e.class !== 'c1');
  assert.equal(fewer.meta.entries.length, 7);
  assert.ok(fewer.meta.entries.every((e) => e.class !== 'c1'));
  assert.deepEqual(fewer.embeddings.subarray(0, 8), g.embeddings.subarray(0, 8));
  assert.deepEqual(
    fewer.embeddings.subarray(8, 16),
    g.embeddings.subarray(16, 24),
    'row 2 moved up after row 1 was removed',
  );
  assert.throws(
    () => writeGallery(path, { ...g, embeddings: g.embeddings.subarray(0, 72) }),
    /10 entries but 9 embedding rows/,
  );
  assert.deepEqual(readGallery(path).embeddings, g.embeddings, 'a refused write leaves the file as it was');

  // A child rewrites a ~8 MB gallery in a loop; killing it mid-write must leave a readable gallery.
  const big = join(work, 'big.gallery');
  writeGallery(big, fakeGallery(4000, 512, 2));
  const fmt = join(repoRoot, 'dist', 'src', 'gallery', 'format.js');
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `
    const f = await import(${JSON.stringify(fmt)});
    const g = f.readGallery(${JSON.stringify(big)});
    process.stdout.write('ready\\n');
    for (let i = 0; ; i++) { g.embeddings[0] = i; f.writeGallery(${JSON.stringify(big)}, g); }`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((res) => child.stdout!.once('data', () => res()));
  await new Promise((res) => setTimeout(res, 400));
  child.kill('SIGKILL');
  await new Promise((res) => child.once('exit', res));
  const after = readGallery(big);
  assert.equal(after.meta.entries.length, 4000);
  assert.ok(after.embeddings[0]! >= 0 && Number.isInteger(after.embeddings[0]!), 'row 0 is from one whole write');
});

test('exact search: chunked matmul + topk equals a float64 brute force', () => {
  const n = 203;
  const d = 16;
  const q = 9;
  const k = 5;
  const rows = unitRows(n, d, 3);
  const qs = unitRows(q, d, 4);
  const index = new ExactIndex(rows, d, 'cpu', 17); // 12 chunks: merging is exercised
  const res = T.tidy(() => index.search(T.tensor(qs, [q, d]), k));
  index.dispose();
  let fromLaterChunks = 0;
  for (let i = 0; i < q; i++) {
    const sims = Array.from({ length: n }, (_, j) => {
      let s = 0;
      for (let t = 0; t < d; t++) s += qs[i * d + t]! * rows[j * d + t]!;
      return { j, s };
    }).sort((a, b) => b.s - a.s);
    const got = Array.from(res.indices.subarray(i * k, (i + 1) * k));
    assert.deepEqual(
      got,
      sims.slice(0, k).map((x) => x.j),
      `query ${i}`,
    );
    for (let t = 0; t < k; t++) assert.ok(Math.abs(res.scores[i * k + t]! - sims[t]!.s) < 1e-5);
    fromLaterChunks += got.filter((j) => j >= 17).length;
  }
  // Negative control: the answer is not the first chunk's.
  assert.ok(fromLaterChunks > 0);
});

test('the k-NN vote is normalised per class: a product enrolled with one photo wins when that photo matches best', () => {
  // 2-d unit rows: 'many' has 6 photos at angles 0.30-0.40 rad from the query, 'new' one photo at 0.10 rad.
  const at = (a: number): [number, number] => [Math.cos(a), Math.sin(a)];
  const rows = [...[0.3, 0.32, 0.34, 0.36, 0.38, 0.4].map(at), at(-0.1)];
  const g = fakeGallery(rows.length, 2, 1);
  g.meta.k = 5;
  g.meta.entries = rows.map((_, i) => ({ class: i < 6 ? 'many' : 'new', path: `/p/${i}.jpg` }));
  g.embeddings = new Float32Array(rows.flat());
  const m = new GalleryMatcher(g, new ExactIndex(g.embeddings, 2));
  try {
    const [a] = m.match(new Float32Array(at(0)));
    assert.equal(a!.class, 'new', JSON.stringify(a!.top));
    const sims = rows.map(([x]) => x); // cosine with the query (1, 0)
    const many = sims.slice(0, 4).reduce((u, v) => u + v, 0) / 4; // 'many' fills 4 of the 5 places
    assert.ok(Math.abs(a!.top.find((v) => v.class === 'new')!.votes - sims[6]!) < 1e-6);
    assert.ok(Math.abs(a!.top.find((v) => v.class === 'many')!.votes - (many * 4) / 5) < 1e-6);
    // Negative control: the plain sum of similarities (the vote before normalisation) picks the 6-photo class.
    assert.ok(sims.slice(0, 4).reduce((u, v) => u + v, 0) > sims[6]!);
  } finally {
    m.dispose();
  }
});

test('open-set metrics: AUROC and the threshold for a false-accept rate', () => {
  assert.equal(auroc([0.9, 0.8], [0.1, 0.2]), 1);
  assert.equal(auroc([0.1, 0.2], [0.9, 0.8]), 0);
  assert.equal(auroc([0.5, 0.5], [0.5]), 0.5);
  assert.equal(auroc([0.3, 0.9], [0.5]), 0.5);
  const unknown = Array.from({ length: 100 }, (_, i) => i / 100);
  const known = Array.from({ length: 50 }, (_, i) => 0.5 + i / 100);
  const t = thresholdForFar(known, unknown, 0.05);
  assert.ok(t.far <= 0.05 && t.far >= 0.04, `far ${t.far}`);
  assert.ok(t.threshold > 0.94 && t.threshold < 0.96, `threshold ${t.threshold}`);
  assert.equal(t.tar, known.filter((s) => s >= t.threshold).length / known.length);
  assert.equal(thresholdForFar(known, unknown, 0).far, 0);
  assert.throws(() => thresholdForFar(known, [], 0.1), /at least one unknown/);
});

test('CLI: build, enrol a new class, predict, eval, calibrate, remove; another model is refused', async () => {
  const runDir = join(work, 'run');
  const otherRun = join(work, 'other');
  await makeRun(runDir, { model: 'resnet18', size: 32, seed: 5 });
  await makeRun(otherRun, { model: 'resnet18', size: 32, seed: 6 });
  // Dataset of 5 classes x 6 photos (symlinks: the sample is never touched); the 6th class is enrolled later.
  const classes = readdirSync(join(sample, 'train')).sort();
  const held = classes[5]!;
  const data = join(work, 'data');
  for (const c of classes.slice(0, 5)) {
    mkdirSync(join(data, 'train', c), { recursive: true });
    for (const f of readdirSync(join(sample, 'train', c))
      .sort()
      .slice(0, 6))
      symlinkSync(join(sample, 'train', c, f), join(data, 'train', c, f));
  }
  const gal = join(work, 'shop.gallery');
  let r = run(['gallery', 'build', runDir, '--data', data, '--out', gal, '--k', '3']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /30 photos of 5 classes, 512-d pooled embeddings/);

  // A copy of a built photo (another path: no leave-one-out) must match its own row: build (loader) and
  // predict (file path) share the pre-processing.
  const c0 = classes[0]!;
  const copy = join(work, 'copy.jpg');
  copyFileSync(join(data, 'train', c0, readdirSync(join(data, 'train', c0)).sort()[2]!), copy);
  r = run(['predict', runDir, copy, '--gallery', gal, '--json']);
  assert.equal(r.code, 0, r.stderr);
  let p = JSON.parse(r.stdout) as {
    class: string | null;
    similarity: number;
    unknown: boolean;
    neighbours: { path: string }[];
  }[];
  assert.equal(p[0]!.class, c0);
  assert.ok(p[0]!.similarity > 0.9999, `similarity ${p[0]!.similarity}`);

  // Built with i8 vectors: recorded in the file, a byte a value, and the copy still finds its own (quantized) row.
  const gal8 = join(work, 'shop-i8.gallery');
  r = run(['gallery', 'build', runDir, '--data', data, '--out', gal8, '--k', '3', '--vectors', 'i8']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /512-d pooled embeddings of resnet18 \(i8 vectors\)/);
  const g8 = readGallery(gal8);
  assert.equal(g8.meta.vectors, 'i8');
  assert.equal(storedRowsOf(g8).data.byteLength, 30 * 512);
  r = run(['predict', runDir, copy, '--gallery', gal8, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const p8 = JSON.parse(r.stdout) as { class: string | null; similarity: number }[];
  assert.equal(p8[0]!.class, c0);
  assert.ok(p8[0]!.similarity > 0.999 && p8[0]!.similarity < 1.000001, `i8 similarity ${p8[0]!.similarity}`);

  // Enrol the held-back class from 3 photos; a copy of one of them is recognised as that class.
  const heldPhotos = readdirSync(join(sample, 'train', held))
    .sort()
    .map((f) => join(sample, 'train', held, f));
  r = run(['gallery', 'add', gal, '--class', held, ...heldPhotos.slice(0, 3)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /enrolled 3 photo\(s\).*33 photos in all/);
  const heldCopy = join(work, 'held-copy.jpg');
  copyFileSync(heldPhotos[1]!, heldCopy);
  r = run(['predict', runDir, heldCopy, heldPhotos[1]!, '--gallery', gal, '--json']);
  assert.equal(r.code, 0, r.stderr);
  p = JSON.parse(r.stdout);
  assert.equal(p[0]!.class, held);
  assert.ok(p[0]!.similarity > 0.9999);
  // The enrolled photo itself is not its own neighbour (leave-one-out): its best match is another photo.
  assert.ok(p[1]!.similarity < 0.99999 && !p[1]!.neighbours.some((n) => n.path === heldPhotos[1]));

  r = run(['gallery', 'list', gal, '--json']);
  const listed = JSON.parse(r.stdout) as { classes: { class: string; photos: number }[]; photos: number };
  assert.deepEqual(
    listed.classes.map((c) => c.photos),
    [6, 6, 6, 6, 6, 3].slice(0, listed.classes.length),
  );
  assert.ok(listed.classes.some((c) => c.class === held && c.photos === 3));

  // Eval on the build split: every photo's own row is skipped, so no similarity is 1.
  r = run(['eval', runDir, '--data', data, '--split', 'train', '--gallery', gal, '--out', join(work, 'ev.json')]);
  assert.equal(r.code, 0, r.stderr);
  const ev = JSON.parse(readFileSync(join(work, 'ev.json'), 'utf8')) as {
    kind: string;
    metrics: { known: number; unknown: number; top1: number };
    predictions: { similarity: number }[];
  };
  assert.equal(ev.kind, 'gallery');
  assert.equal(ev.metrics.known, 30);
  assert.equal(ev.metrics.unknown, 0);
  assert.ok(ev.metrics.top1 >= 0 && ev.metrics.top1 <= 1);
  assert.ok(
    ev.predictions.every((x) => x.similarity < 0.99999),
    'leave-one-out',
  );

  // Calibrate: known = copies of enrolled photos (similarity 1), unknown = photos of a removed class.
  r = run(['gallery', 'remove', gal, '--class', held]);
  assert.equal(r.code, 0, r.stderr);
  r = run(['predict', runDir, heldCopy, '--gallery', gal, '--json']);
  p = JSON.parse(r.stdout);
  assert.notEqual(p[0]!.class, held, 'removed class no longer answered');
  assert.ok(p[0]!.similarity < 0.9999);
  const known = join(work, 'known', c0);
  mkdirSync(known, { recursive: true });
  copyFileSync(copy, join(known, 'a.jpg'));
  const unknownDir = join(work, 'unknown');
  mkdirSync(unknownDir);
  for (const f of heldPhotos.slice(3, 9)) copyFileSync(f, join(unknownDir, f.split('/').pop()!));
  r = run(['gallery', 'calibrate', gal, '--known', join(work, 'known'), '--unknown', unknownDir, '--far', '0']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /FAR 0\.0000 on 6 unknown, TAR 1\.0000/);
  r = run(['predict', runDir, join(unknownDir, readdirSync(unknownDir)[0]!), copy, '--gallery', gal, '--json']);
  p = JSON.parse(r.stdout);
  assert.equal(p[0]!.unknown, true);
  assert.equal(p[0]!.class, null);
  assert.equal(p[1]!.unknown, false);
  assert.equal(p[1]!.class, c0);

  // Another model's weights: refused with a clear message; bad arguments name the option.
  r = run(['predict', otherRun, copy, '--gallery', gal]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /built with another model/);
  r = run(['gallery', 'add', gal, '--class', 'X', '--model', otherRun, copy]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /built with another model/);
  r = run(['gallery', 'remove', gal, '--class', 'nope']);
  assert.match(r.stderr, /no class 'nope'/);
  r = run(['gallery', 'calibrate', gal, '--known', known, '--unknown', unknownDir, '--far', '2']);
  assert.match(r.stderr, /--far: expected a number >= 0 and < 1 but received '2'/);
});
