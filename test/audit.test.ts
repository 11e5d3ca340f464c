// The label audit: confident learning against a hand computation, the leave-one-out k-NN scores against a
// float64 brute force, planted label flips, and `goodsrec audit` end to end on synthetic colour photos
// with a stand-in run: planted wrong labels are flagged (and a clean copy is not), planted copies and
// near copies across classes and splits are found, the look-alike pair comes first, and the dataset's
// files are byte-identical afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { makeRun, sample } from './fixres-helpers.js';
import { runCli } from './helpers/cli.js';
import { colourDataset, folderDigest } from './helpers/colour-photos.js';
import { artifacts, chromiumSkip, openPage, withChromium } from './helpers/chromium-page.js';
import { confidentLearning, rankBySuspicion } from '../src/audit/confident-learning.js';
import { knnLabelProbabilities } from '../src/audit/knn-scores.js';
import { flipLabels, toManifest } from '../src/audit/flip-labels.js';
import { differenceHash } from '../src/audit/near-duplicates.js';
import { loadDataset, parseCsv, type Dataset } from '../src/data/index.js';
import { Rng } from '../src/util/rng.js';
import type { AuditResult } from '../src/audit/audit.js';

const work = mkdtempSync(join(tmpdir(), 'goodsrec-audit-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const run = runCli;

test('confident learning: thresholds, confident joint, calibration and pruning as computed by hand', () => {
  // Photo 2 is given class 0 but looks like class 1; photo 3 reaches no class's threshold.
  const probs = [
    [0.9, 0.05, 0.05],
    [0.8, 0.1, 0.1],
    [0.1, 0.85, 0.05],
    [0.1, 0.8, 0.1],
    [0.05, 0.9, 0.05],
    [0.1, 0.1, 0.8],
  ];
  const labels = [0, 0, 0, 1, 1, 2];
  const r = confidentLearning(probs.flat(), labels, 3);
  // t_j = mean p(j) over the photos given j: (0.9 + 0.8 + 0.1) / 3, (0.8 + 0.9) / 2, 0.8.
  assert.deepEqual(
    Array.from(r.thresholds, (t) => Number(t.toFixed(12))),
    [0.6, 0.85, 0.8],
  );
  assert.deepEqual(r.confidentJoint, [
    [2, 1, 0],
    [0, 1, 0],
    [0, 0, 1],
  ]);
  // Row 1 holds 1 counted photo of 2: scaled to [0, 2, 0]; the total is already n = 6.
  assert.deepEqual(r.calibratedJoint, [
    [2, 1, 0],
    [0, 2, 0],
    [0, 0, 1],
  ]);
  assert.deepEqual(r.flagged, [false, false, true, false, false, false]);
  assert.equal(r.estimatedErrors, 1);
  assert.equal(r.quality[2], 0.1);
  assert.equal(r.suggested[2], 1);
  assert.equal(r.suggestedProbability[2], 0.85);
  // Lowest p(given) first; ties (0.8, 0.9) by the larger alternative, then by position.
  assert.deepEqual(rankBySuspicion(r), [2, 1, 3, 5, 0, 4]);

  // Both photos given class 1 reach class 0's threshold (0.6) and it beats theirs (0.15): the cell (1, 0)
  // holds 2, but one photo of the class is kept (min one per class): the one with the larger margin goes.
  const two = confidentLearning([0.6, 0.4, 0.6, 0.4, 0.9, 0.1, 0.8, 0.2], [0, 0, 1, 1], 2);
  assert.deepEqual(two.confidentJoint, [
    [2, 0],
    [2, 0],
  ]);
  assert.deepEqual(two.flagged, [false, false, true, false]);
  // A photo whose most probable class is its given one is never flagged: photo 0 is below its class's
  // threshold (0.8875) and above class 1's (0.3), so it is counted in the cell (0, 1) and pruned, but kept.
  const sure = confidentLearning([0.55, 0.45, 1, 0, 1, 0, 1, 0, 0.7, 0.3, 0.7, 0.3], [0, 0, 0, 0, 1, 1], 2);
  assert.deepEqual(sure.confidentJoint, [
    [3, 1],
    [0, 2],
  ]);
  assert.equal(sure.estimatedErrors, 1);
  assert.deepEqual(sure.flagged, [false, false, false, false, false, false]);
  assert.throws(() => confidentLearning([0.5, 0.5], [0, 1], 2), /2 probabilities for 2 photos x 2 classes/);
});

/** Seeded unit rows around `centres` class centres (noise sd sigma), row-major. */
function clusters(classes: number, perClass: number, dim: number, sigma: number, seed: number) {
  const rng = new Rng(seed);
  const centres = Array.from({ length: classes }, () => Array.from({ length: dim }, () => rng.normal()));
  const rows = new Float32Array(classes * perClass * dim);
  const labels: number[] = [];
  for (let c = 0; c < classes; c++)
    for (let k = 0; k < perClass; k++) {
      const i = labels.length;
      const v = centres[c]!.map((x) => x + sigma * rng.normal());
      const norm = Math.hypot(...v);
      v.forEach((x, d) => (rows[i * dim + d] = x / norm));
      labels.push(c);
    }
  return { rows, labels };
}

test('k-NN scores: the weighted vote of the k nearest other photos (float64 brute force); a photo never votes for itself', () => {
  const { rows, labels } = clusters(4, 9, 8, 1.2, 3);
  const n = labels.length;
  const k = 5;
  const t = 0.1;
  const got = knnLabelProbabilities(rows, 8, labels, 4, { k, temperature: t });
  let exact = 0;
  for (let i = 0; i < n; i++) {
    const sims = [];
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      let s = 0;
      for (let d = 0; d < 8; d++) s += rows[i * 8 + d]! * rows[j * 8 + d]!;
      sims.push({ j, s });
    }
    sims.sort((a, b) => b.s - a.s);
    const w = [0, 0, 0, 0];
    for (const { j, s } of sims.slice(0, k)) w[labels[j]!]! += Math.exp((s - sims[0]!.s) / t);
    const total = w.reduce((a, b) => a + b, 0);
    for (let c = 0; c < 4; c++) {
      assert.ok(Math.abs(got[i * 4 + c]! - w[c]! / total) < 1e-5, `photo ${i} class ${c}`);
      if (w[c]! / total === 1) exact++;
    }
  }
  assert.ok(exact < n, 'some rows mix classes (the check is not only of one-hot rows)');
  // Queries in blocks (4 blocks of 8 and one of 4 here) give the same rows.
  const blocked = knnLabelProbabilities(rows, 8, labels, 4, { k, temperature: t, queryBlock: 8 });
  assert.ok(
    blocked.every((p, i) => Math.abs(p - got[i]!) < 1e-6),
    'blocked queries',
  );
  // The only photo given class 3 gets p(3) = 0: its own label never enters its row.
  const lone = [...labels];
  lone[0] = 3;
  for (let i = 1; i < n; i++) if (lone[i] === 3) lone[i] = 2;
  assert.equal(knnLabelProbabilities(rows, 8, lone, 4, { k })[0 * 4 + 3], 0);
});

test('flipLabels: seeded, the asked fraction of one split, always to another class', () => {
  const ds: Dataset = {
    root: '/data',
    classes: ['a', 'b', 'c'],
    samples: Array.from({ length: 60 }, (_, i) => ({
      path: `p${i}.jpg`,
      label: i % 3,
      split: i < 40 ? 'train' : 'test',
    })),
  };
  const one = flipLabels(ds, { fraction: 0.1, seed: 4 });
  assert.equal(one.flips.length, 4);
  assert.deepEqual(flipLabels(ds, { fraction: 0.1, seed: 4 }).flips, one.flips, 'same seed, same flips');
  assert.notDeepEqual(flipLabels(ds, { fraction: 0.1, seed: 5 }).flips, one.flips);
  let changed = 0;
  one.dataset.samples.forEach((s, i) => {
    if (s.label !== ds.samples[i]!.label) {
      changed++;
      assert.equal(ds.samples[i]!.split, 'train');
    }
    assert.equal(s.path, `/data/p${i}.jpg`, 'absolute paths');
  });
  assert.equal(changed, 4);
  for (const f of one.flips) assert.notEqual(f.trueClass, f.givenClass);
  assert.equal(ds.samples[0]!.path, 'p0.jpg', 'the input is not modified');
  assert.deepEqual(toManifest(one.dataset).samples[0], { path: '/data/p0.jpg', class: 'a', split: 'train' });
});

test('difference hash: a re-encoded, resized copy is within a few bits; another photo is not', async () => {
  const photos = join(work, 'dhash');
  await colourDataset(photos, ['red', 'blue'], 2);
  const file = join(photos, 'train', 'red', 'red_0.jpg');
  const raw = async (f: string | Buffer) => {
    const { data, info } = await sharp(f).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    return differenceHash({ data: new Uint8Array(data), width: info.width, height: info.height });
  };
  const bits = (a: [number, number], b: [number, number]) =>
    [a[0] ^ b[0], a[1] ^ b[1]].reduce((n, x) => n + [...(x >>> 0).toString(2)].filter((c) => c === '1').length, 0);
  const h = await raw(file);
  const copy = await raw(await sharp(file).resize(40, 40).jpeg({ quality: 60 }).toBuffer());
  assert.ok(bits(h, copy) <= 4, `copy: ${bits(h, copy)} bits`);
  assert.ok(bits(h, await raw(join(photos, 'train', 'red', 'red_1.jpg'))) > 12, 'another photo of the class');
  assert.ok(bits(h, await raw(join(photos, 'train', 'blue', 'blue_0.jpg'))) > 12, 'a photo of another class');
});

test('goodsrec audit: planted wrong labels are flagged, a clean copy is not, and the dataset is unchanged', async () => {
  const runDir = join(work, 'run');
  await makeRun(runDir, { model: 'resnet18', size: 32, seed: 5 });
  const data = join(work, 'colours');
  await colourDataset(data, ['red', 'green', 'blue', 'yellow', 'grey'], 16);
  const lists = join(work, 'lists');
  mkdirSync(lists);
  const ds = loadDataset(data);
  const { dataset, flips } = flipLabels(ds, { fraction: 0.1, seed: 1 });
  writeFileSync(join(lists, 'flipped.json'), JSON.stringify(toManifest(dataset)));
  writeFileSync(join(lists, 'clean.json'), JSON.stringify(toManifest(ds)));
  const before = { data: folderDigest(data), lists: folderDigest(lists) };

  let r = run(['audit', runDir, '--data', join(lists, 'flipped.json'), '--out', join(work, 'audit-flipped')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /audited 80 photos \(train\)/);
  const a = JSON.parse(readFileSync(join(work, 'audit-flipped', 'audit.json'), 'utf8')) as AuditResult;
  const planted = new Map(flips.map((f) => [f.path, f.trueClass]));
  const flagged = a.labels.photos.filter((p) => p.flagged);
  const hits = flagged.filter((p) => planted.has(p.path));
  assert.equal(flips.length, 8);
  assert.ok(hits.length / flagged.length >= 0.8, `precision ${hits.length}/${flagged.length}`);
  assert.ok(hits.length / flips.length >= 0.8, `recall ${hits.length}/${flips.length}`);
  const right = hits.filter((p) => p.suggested === planted.get(p.path)).length;
  assert.ok(right / hits.length >= 0.8, `suggested the true class for ${right} of ${hits.length}`);
  // The ranking: the k = #flips most suspect photos are the flips.
  const topK = a.labels.photos.slice(0, flips.length).filter((p) => planted.has(p.path)).length;
  assert.ok(topK / flips.length >= 0.8, `precision at k ${topK}/${flips.length}`);

  // suggestions.csv lists the flagged photos, most suspect first, with their suggestion.
  const csv = parseCsv(readFileSync(join(work, 'audit-flipped', 'suggestions.csv'), 'utf8'));
  assert.deepEqual(csv[0], ['kind', 'path', 'split', 'given_class', 'suggested_class', 'score', 'other_path', 'note']);
  const labelRows = csv.slice(1).filter((row) => row[0] === 'label');
  assert.deepEqual(
    labelRows.map((row) => [row[1], row[3], row[4]]),
    flagged.map((p) => [p.path, p.given, p.suggested]),
  );
  const html = readFileSync(join(work, 'audit-flipped', 'audit.html'), 'utf8');
  assert.match(html, /Likely wrong labels \(\d+ of \d+ shown/);
  assert.ok((html.match(/data:image\/jpeg;base64/g) ?? []).length >= 5, 'thumbnails inlined');
  assert.match(html, /echarts/);

  // Negative control: the same photos with their true labels.
  r = run(['audit', runDir, '--data', join(lists, 'clean.json'), '--out', join(work, 'audit-clean')]);
  assert.equal(r.code, 0, r.stderr);
  const clean = JSON.parse(readFileSync(join(work, 'audit-clean', 'audit.json'), 'utf8')) as AuditResult;
  assert.ok(clean.labels.flagged <= 2, `${clean.labels.flagged} of 80 clean labels flagged`);

  assert.deepEqual({ data: folderDigest(data), lists: folderDigest(lists) }, before, 'dataset files byte-identical');
  r = run(['audit', runDir, '--data', data, '--out', join(data, 'train', 'audit')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /inside the dataset; goodsrec never writes into a dataset/);
  assert.deepEqual(folderDigest(data), before.data, 'refused: nothing written');
});

test('goodsrec audit: copies and near copies across classes and splits, and the look-alike pair first', async () => {
  const runDir = join(work, 'run2');
  await makeRun(runDir, { model: 'resnet18', size: 32, seed: 5 });
  const data = join(work, 'dups');
  await colourDataset(data, ['red', 'crimson', 'green', 'blue', 'yellow', 'grey'], 12);
  await colourDataset(data, ['red', 'crimson', 'green', 'blue', 'yellow', 'grey'], 3, { split: 'test', first: 100 });
  // An exact copy in another split and class, a near copy in another split, a near copy in another class.
  copyFileSync(join(data, 'train', 'red', 'red_0.jpg'), join(data, 'test', 'green', 'copy-of-red_0.jpg'));
  const nearCopy = (from: string, to: string) =>
    sharp(join(data, from)).resize(40, 40).jpeg({ quality: 60 }).toFile(join(data, to));
  await nearCopy('train/blue/blue_1.jpg', 'test/blue/near-blue_1.jpg');
  await nearCopy('train/yellow/yellow_2.jpg', 'train/grey/near-yellow_2.jpg');
  const before = folderDigest(data);

  const out = join(work, 'audit-dups');
  const r = run(['audit', runDir, '--data', data, '--out', out, '--pairs', '5']);
  assert.equal(r.code, 0, r.stderr);
  const a = JSON.parse(readFileSync(join(out, 'audit.json'), 'utf8')) as AuditResult;
  assert.equal(a.duplicates.exact.length, 1);
  const g = a.duplicates.exact[0]!;
  assert.equal(g.kind, 'cross-split');
  assert.equal(g.conflictingLabels, true);
  assert.deepEqual(g.files.map((f) => f.path).sort(), [
    join(data, 'test', 'green', 'copy-of-red_0.jpg'),
    join(data, 'train', 'red', 'red_0.jpg'),
  ]);
  const near = a.duplicates.near.map((d) => [d.a.path, d.b.path].sort().join(' '));
  assert.deepEqual(
    near.sort(),
    [
      [join(data, 'test', 'blue', 'near-blue_1.jpg'), join(data, 'train', 'blue', 'blue_1.jpg')].sort().join(' '),
      [join(data, 'train', 'grey', 'near-yellow_2.jpg'), join(data, 'train', 'yellow', 'yellow_2.jpg')]
        .sort()
        .join(' '),
    ].sort(),
    'the two planted near copies and nothing else (the exact copy is listed once, as exact)',
  );
  assert.ok(a.duplicates.near.every((d) => d.bits <= 4));
  const csv = parseCsv(readFileSync(join(out, 'suggestions.csv'), 'utf8'));
  assert.equal(csv.filter((row) => row[0] === 'exact-duplicate').length, 1);
  assert.equal(csv.filter((row) => row[0] === 'near-duplicate').length, 2);

  const first = a.lookalikes[0]!;
  assert.deepEqual([first.a, first.b], ['crimson', 'red']);
  assert.ok(first.aAsB + first.bAsA > 0, 'the pair is confused');
  const others = a.lookalikes.slice(1).map((l) => l.centroidSimilarity);
  assert.ok(
    others.every((s) => s < first.centroidSimilarity),
    'the planted pair also has the closest centroids',
  );
  assert.deepEqual(folderDigest(data), before, 'dataset files byte-identical');
});

test('the audit page renders in headless Chromium: both charts drawn, every thumbnail decoded, no console errors', {
  skip: chromiumSkip(),
}, async () => {
  const runDir = join(work, 'run3');
  await makeRun(runDir, { model: 'resnet18', size: 32, seed: 5 });
  const data = join(work, 'page');
  await colourDataset(data, ['red', 'green', 'blue'], 8);
  // One photo of red in green's folder: a suspect with photos of both classes beside it.
  copyFileSync(join(data, 'train', 'red', 'red_3.jpg'), join(data, 'train', 'green', 'red_3-as-green.jpg'));
  const out = join(work, 'audit-page');
  const r = run(['audit', runDir, '--data', data, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const a = JSON.parse(readFileSync(join(out, 'audit.json'), 'utf8')) as AuditResult;
  assert.ok(a.labels.flagged >= 1);
  await withChromium(async (browser) => {
    const { page, painted, images, errors } = await openPage(browser, join(out, 'audit.html'));
    assert.equal(painted.length, 2, 'chart containers');
    for (const [i, n] of painted.entries()) assert.ok(n > 500, `chart ${i} has ${n} painted pixels`);
    // A suspect, 3 reference photos of its given class and 3 of its suggested one at least.
    assert.ok(images.length >= 7, `${images.length} thumbnails`);
    assert.deepEqual(
      images.filter((i) => !i.ok),
      [],
      'every thumbnail decoded',
    );
    assert.deepEqual(errors, [], 'console errors');
    await page.screenshot({ path: join(artifacts, 'audit-report.png'), fullPage: true });
    await page.close();
  });
});

test("goodsrec audit --scores model: the classifier's probabilities, a warning on the run's own training split", async () => {
  const runDir = join(work, 'run4');
  await makeRun(runDir, { model: 'resnet18', size: 32, seed: 5 }); // trained on the sample's 'train' split
  let r = run(['audit', runDir, '--data', sample, '--split', 'train', '--scores', 'model', '--out', join(work, 'm1')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /warning: --scores model on split 'train', which .* trained on: its probabilities there are in-sample/,
  );
  const a = JSON.parse(readFileSync(join(work, 'm1', 'audit.json'), 'utf8')) as AuditResult;
  assert.deepEqual(a.scores, { method: 'model' });
  // Every photo's probabilities over the dataset's classes: p(given) + the best other <= 1.
  assert.ok(a.labels.photos.every((p) => p.quality >= 0 && p.quality + p.suggestedProbability <= 1 + 1e-9));
  // Negative control: the held-out split is out-of-sample, no warning.
  r = run(['audit', runDir, '--data', sample, '--split', 'test', '--scores', 'model', '--out', join(work, 'm2')]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /warning/);
  // Classes the classifier does not have: an error that names them and the way out.
  const other = join(work, 'other-classes');
  await colourDataset(other, ['red', 'blue'], 3);
  r = run(['audit', runDir, '--data', other, '--scores', 'model', '--out', join(work, 'm3')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /2 class\(es\) the model was not trained on: blue, red; --scores knn audits any classes/);
});
