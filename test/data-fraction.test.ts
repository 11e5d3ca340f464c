/**
 * `data.fraction` at RP2K's scale (issue 28, item 4): 2,388 classes with a long tail, read through the trainer's
 * own data setup from a manifest (no image is opened). Every class keeps at least one photo and each class keeps
 * its asked share, rounded; a plain random sample of the same size, the negative control, fails the same check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { classCounts, type Dataset } from '../src/data/index.js';
import { DEFAULT_CONFIG } from '../src/run/config.js';
import { prepareDataset } from '../src/train/data-setup.js';
import { Rng } from '../src/util/rng.js';
import { tmpDir } from './data-helpers.js';

const K = 2388;

/** Train photos per class: 200 at the head, log-linear down to 1 at the tail (many classes of 1-10). */
function longTail(): number[] {
  return Array.from({ length: K }, (_, r) => Math.max(1, Math.round(Math.exp(Math.log(200) * (1 - r / (K - 1))))));
}

/** A manifest of K classes with Unicode names (CJK, full-width brackets; the index order is the rank), a long-tailed
 * train split and a test split. */
function makeManifest(counts: number[]): string {
  const dir = tmpDir('fraction');
  const samples: { path: string; class: string; split: string }[] = [];
  counts.forEach((n, c) => {
    const name = `商品${String(c).padStart(4, '0')}（瓶装）${c % 7 === 0 ? ' Ärla' : ''}`;
    for (let i = 0; i < n; i++) samples.push({ path: `all/train/${c}/${i}.jpg`, class: name, split: 'train' });
    for (let i = 0; i < 2; i++) samples.push({ path: `all/test/${c}/${i}.jpg`, class: name, split: 'test' });
  });
  const file = join(dir, 'manifest.json');
  writeFileSync(file, JSON.stringify({ samples }));
  return file;
}

/**
 * The classes whose kept count breaks the rule: at least one photo, and within half a photo of fraction x n
 * (the rounding) otherwise.
 */
function violations(full: number[], kept: number[], fraction: number): string[] {
  const bad: string[] = [];
  full.forEach((n, c) => {
    const k = kept[c]!;
    if (n > 0 && k < 1) bad.push(`class ${c}: ${n} photos, none kept`);
    else if (k > 1 && Math.abs(k - fraction * n) > 0.5) bad.push(`class ${c}: ${k} of ${n} kept at ${fraction}`);
    else if (k === 1 && fraction * n >= 1.5) bad.push(`class ${c}: 1 of ${n} kept at ${fraction}`);
  });
  return bad;
}

function prepare(root: string, fraction: number, seed: number) {
  return prepareDataset({
    ...DEFAULT_CONFIG,
    seed,
    data: { ...DEFAULT_CONFIG.data, root, fraction, valSplit: 'test' },
  });
}

test('data.fraction at 2,388 long-tailed classes: every class keeps >= 1 photo and its share, seeded', () => {
  const counts = longTail();
  assert.ok(counts.filter((n) => n < 20).length > K / 3, 'the fixture has a long tail');
  const root = makeManifest(counts);
  const whole = prepare(root, 1, 0);
  assert.deepEqual(classCounts(whole.train), counts);
  for (const f of [0.5, 0.1, 0.01]) {
    const { train, val } = prepare(root, f, 7);
    assert.equal(train.classes.length, K, 'the class index keeps every class');
    assert.deepEqual(train.classes, whole.train.classes);
    assert.ok(
      train.samples.every((s) => s.split === 'train'),
      'only train photos',
    );
    assert.equal(val?.samples.length, 2 * K, 'the validation split is not subsampled');
    const kept = classCounts(train);
    assert.deepEqual(violations(counts, kept, f), [], `fraction ${f}`);
    // The same seed gives the same photos; another seed other photos.
    assert.deepEqual(prepare(root, f, 7).train.samples, train.samples);
    assert.notDeepEqual(prepare(root, f, 8).train.samples, train.samples);
  }
});

test('data.fraction negative control: a plain random sample of the same size breaks the per-class rule', () => {
  const counts = longTail();
  const whole: Dataset = prepare(makeManifest(counts), 1, 0).train;
  const f = 0.1;
  const n = Math.round(whole.samples.length * f);
  const perm = new Rng(7).permutation(whole.samples.length);
  const naive = { ...whole, samples: [...perm.subarray(0, n)].map((i) => whole.samples[i]!) };
  const bad = violations(counts, classCounts(naive), f);
  assert.ok(
    bad.some((b) => b.includes('none kept')),
    'tail classes lose every photo',
  );
  assert.ok(bad.length > 100, `${bad.length} classes off their share`);
});
