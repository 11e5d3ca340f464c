// The gallery's look-alike guard: class centroids and the closest pairs against a float64 brute force, the
// threshold it judges by (calibrated, or the own-class median), which existing classes new photos lie
// within it, and the CLI: `gallery add` of a planted look-alike warns, of a distinct product does not, and
// `gallery list --lookalikes` lists the planted pair first; `gallery build --vectors i8 --refine` + `gallery add`
// keep every row's f32 row in the rewritten file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRun } from './fixres-helpers.js';
import { runCli } from './helpers/cli.js';
import { colourDataset } from './helpers/colour-photos.js';
import { GALLERY_FORMAT, readGallery, type Gallery } from '../src/gallery/format.js';
import { materialiseRefine } from '../src/gallery/refine.js';
import {
  checkNewClass,
  classCentroids,
  closestCentroidPairs,
  lookalikeThreshold,
  lookalikesOf,
  type LookalikeReport,
} from '../src/gallery/lookalikes.js';
import { Rng } from '../src/util/rng.js';

const work = mkdtempSync(join(tmpdir(), 'goodsrec-lookalikes-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const run = runCli;

const unit = (v: number[]): number[] => {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
};
const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

/** A gallery of unit rows: `perClass` noisy photos around each of `classes` random centres. */
function clusteredGallery(classes: number, perClass: number, dim: number, sigma: number, seed: number): Gallery {
  const rng = new Rng(seed);
  const centres = Array.from({ length: classes }, () => Array.from({ length: dim }, () => rng.normal()));
  const rows: number[] = [];
  const entries: Gallery['meta']['entries'] = [];
  for (let c = 0; c < classes; c++)
    for (let k = 0; k < perClass; k++) {
      rows.push(...unit(centres[c]!.map((x) => x + sigma * rng.normal())));
      entries.push({ class: `c${String(c).padStart(2, '0')}`, path: `/p/${c}-${k}.jpg` });
    }
  return {
    meta: {
      format: GALLERY_FORMAT,
      dim,
      k: 5,
      threshold: null,
      model: {
        hash: 'ab'.repeat(32),
        checkpoint: '/x',
        name: 'resnet18',
        embedding: 'pooled',
        preprocess: { size: 32, resize: 'letterbox', cropPct: 0.875, mean: [0, 0, 0], std: [1, 1, 1] },
      },
      entries,
    },
    embeddings: new Float32Array(rows),
  };
}

test('class centroids and the closest centroid pairs match a float64 brute force', () => {
  const classes = 14;
  const dim = 6;
  const g = clusteredGallery(classes, 5, dim, 0.8, 11);
  const labels = g.meta.entries.map((e) => Number(e.class.slice(1)));
  const centroids = classCentroids(g.embeddings, dim, labels, classes);
  const brute: number[][] = [];
  for (let c = 0; c < classes; c++) {
    const sum = new Array<number>(dim).fill(0);
    labels.forEach((l, i) => {
      if (l === c) for (let d = 0; d < dim; d++) sum[d]! += g.embeddings[i * dim + d]!;
    });
    brute.push(unit(sum));
    for (let d = 0; d < dim; d++) assert.ok(Math.abs(centroids[c * dim + d]! - brute[c]![d]!) < 1e-6);
  }
  const all: { a: number; b: number; s: number }[] = [];
  for (let a = 0; a < classes; a++)
    for (let b = a + 1; b < classes; b++) all.push({ a, b, s: dot(brute[a]!, brute[b]!) });
  all.sort((x, y) => y.s - x.s);
  const got = closestCentroidPairs(centroids, dim, 6);
  assert.deepEqual(
    got.map((p) => [p.a, p.b]),
    all.slice(0, 6).map((p) => [p.a, p.b]),
  );
  for (const [i, p] of got.entries()) assert.ok(Math.abs(p.similarity - all[i]!.s) < 1e-5);
  // Negative control: the answer is not the first classes' pairs in index order.
  assert.notDeepEqual(
    got.map((p) => [p.a, p.b]),
    [
      [0, 1],
      [0, 2],
      [0, 3],
      [0, 4],
      [0, 5],
      [0, 6],
    ],
  );
});

test('the look-alike threshold: the calibrated one, else the median own-class nearest similarity (float64)', () => {
  const g = clusteredGallery(5, 6, 8, 0.6, 3);
  const d = 8;
  const n = g.meta.entries.length;
  const sims: number[] = [];
  for (let i = 0; i < n; i++) {
    let best = -Infinity;
    for (let j = 0; j < n; j++)
      if (j !== i && g.meta.entries[j]!.class === g.meta.entries[i]!.class)
        best = Math.max(
          best,
          dot(g.embeddings.subarray(i * d, (i + 1) * d), g.embeddings.subarray(j * d, (j + 1) * d)),
        );
    sims.push(best);
  }
  sims.sort((a, b) => a - b);
  const median = (sims[n / 2 - 1]! + sims[n / 2]!) / 2;
  const t = lookalikeThreshold(g)!;
  assert.equal(t.source, 'own-class');
  assert.ok(Math.abs(t.value - median) < 1e-5, `${t.value} vs ${median}`);
  assert.deepEqual(lookalikeThreshold({ ...g, meta: { ...g.meta, threshold: 0.7 } }), {
    value: 0.7,
    source: 'calibrated',
  });
  // One photo per class: nothing to measure a class's own spread with.
  const single = clusteredGallery(3, 1, 8, 0.6, 3);
  assert.equal(lookalikeThreshold(single), null);
  assert.deepEqual(checkNewClass(single, new Float32Array(8).fill(1 / Math.sqrt(8)), 'x').warnings, []);
});

test('new photos within the threshold of an existing class name it; photos elsewhere and the class itself do not', () => {
  const at = (a: number): [number, number] => [Math.cos(a), Math.sin(a)];
  const g = clusteredGallery(1, 1, 2, 0, 1);
  g.meta.entries = [
    { class: 'milk', path: '/m0' },
    { class: 'milk', path: '/m1' },
    { class: 'juice', path: '/j0' },
  ];
  g.embeddings = new Float32Array([...at(0), ...at(0.05), ...at(1.5)]);
  // Two new photos near milk (cos 0.1 = 0.995, cos 0.3 = 0.955), one near juice (cos 0.2 = 0.980).
  const fresh = new Float32Array([...at(0.1), ...at(-0.3), ...at(1.7)]);
  const w = lookalikesOf(g, fresh, 0.97);
  assert.deepEqual(
    w.map((x) => [x.class, x.photos, x.of]),
    [
      ['milk', 1, 3],
      ['juice', 1, 3],
    ],
  );
  assert.ok(Math.abs(w[0]!.similarity - Math.cos(0.05)) < 1e-6, 'the best pair: 0.1 rad against milk at 0.05');
  assert.deepEqual(
    lookalikesOf(g, fresh, 0.95).map((x) => [x.class, x.photos]),
    [
      ['milk', 2],
      ['juice', 1],
    ],
  );
  assert.deepEqual(lookalikesOf(g, fresh, 0.999), [], 'negative control: nothing is that close');
  assert.deepEqual(
    lookalikesOf(g, fresh, 0.95, { exclude: 'milk' }).map((x) => x.class),
    ['juice'],
    'adding photos to milk itself',
  );
});

test('CLI: gallery add of a planted look-alike warns, of a distinct product does not; list --lookalikes names the pair', async () => {
  const runDir = join(work, 'run');
  await makeRun(runDir, { model: 'resnet18', size: 32, seed: 5 });
  // Enrolled: 5 colours x 8 photos. Held out: 3 more photos of each (calibration "known"), purple photos
  // (calibration "unknown" and the distinct product), crimson photos (a look-alike of red).
  const data = join(work, 'data');
  await colourDataset(data, ['red', 'green', 'blue', 'yellow', 'grey'], 8);
  const known = join(work, 'known');
  await colourDataset(known, ['red', 'green', 'blue', 'yellow', 'grey'], 3, { first: 50 });
  await colourDataset(join(work, 'purple'), ['purple'], 6);
  await colourDataset(join(work, 'crimson'), ['crimson'], 4);
  const gal = join(work, 'shop.gallery');
  let r = run(['gallery', 'build', runDir, '--data', data, '--out', gal]);
  assert.equal(r.code, 0, r.stderr);
  // Calibrate on a folder of symlinks: known/<class>/..., unknown: the purple photos.
  const knownDir = join(work, 'known-flat');
  for (const c of readdirSync(join(known, 'train'))) {
    mkdirSync(join(knownDir, c), { recursive: true });
    for (const f of readdirSync(join(known, 'train', c))) symlinkSync(join(known, 'train', c, f), join(knownDir, c, f));
  }
  const purple = join(work, 'purple', 'train', 'purple');
  r = run(['gallery', 'calibrate', gal, '--known', knownDir, '--unknown', purple, '--far', '0']);
  assert.equal(r.code, 0, r.stderr);

  r = run(['gallery', 'add', gal, '--class', 'crimson', join(work, 'crimson', 'train', 'crimson')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /warning: 'crimson' looks like 'red': [1-4] of 4 new photo\(s\) within the calibrated threshold 0\.\d{4} \(best similarity 0\.\d{4}\)/,
  );
  assert.doesNotMatch(r.stderr, /looks like '(green|blue|yellow|grey)'/);
  // The distinct product: purple's photos are all below the threshold (they set it at FAR 0).
  r = run(['gallery', 'add', gal, '--class', 'purple', purple]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /enrolled 6 photo\(s\) of 'purple'/);
  assert.doesNotMatch(r.stderr, /warning/);

  r = run(['gallery', 'list', gal, '--lookalikes', '--pairs', '3', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as LookalikeReport;
  assert.equal(rep.threshold?.source, 'calibrated');
  assert.equal(rep.pairs.length, 3);
  const first = rep.pairs[0]!;
  assert.deepEqual([first.a, first.b], ['crimson', 'red']);
  assert.ok(first.aWithin >= 1 && first.aPhotos === 4 && first.bPhotos === 8);
  assert.ok(rep.pairs.slice(1).every((p) => p.centroidSimilarity <= first.centroidSimilarity));
  r = run(['gallery', 'list', gal, '--lookalikes', '--pairs', '3']);
  assert.match(
    r.stdout.split('\n')[1]!,
    /^\s+0\.\d{4}\s+crimson <-> red\s+best photo pair 0\.\d{4}, within: \d\/4 and \d\/8$/,
  );
  // An i8 gallery with refine rows: built, then `gallery add` rewrites the file it reads its f32 rows from;
  // every row's f32 row (read from the new file) is the photo's f32 embedding (as in the f32 gallery).
  const gal8 = join(work, 'shop-i8.gallery');
  r = run(['gallery', 'build', runDir, '--data', data, '--out', gal8, '--vectors', 'i8', '--refine']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\(i8 vectors, f32 refine rows in the file\)/);
  r = run(['gallery', 'add', gal8, '--class', 'purple', purple]);
  assert.equal(r.code, 0, r.stderr);
  const g8 = readGallery(gal8);
  const g32 = readGallery(gal);
  assert.equal(g8.meta.refine, 'f32');
  const exact = materialiseRefine(g8.refine!, g8.meta.dim);
  const d = g8.meta.dim;
  const rowOf = new Map(g32.meta.entries.map((e, i) => [e.path, i]));
  let worst = 0;
  let worstI8 = 0;
  g8.meta.entries.forEach((e, i) => {
    const j = rowOf.get(e.path)!;
    for (let k = 0; k < d; k++) {
      worst = Math.max(worst, Math.abs(exact[i * d + k]! - g32.embeddings[j * d + k]!));
      worstI8 = Math.max(worstI8, Math.abs(g8.embeddings[i * d + k]! - g32.embeddings[j * d + k]!));
    }
  });
  assert.equal(g8.meta.entries.length, 46);
  assert.ok(worst < 1e-5, `refine rows are the f32 embeddings: ${worst}`);
  assert.ok(worstI8 > 1e-4, `control: the i8 rows are not: ${worstI8}`);
});
