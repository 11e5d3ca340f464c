// Accuracy by training frequency (issue 28, item 3): the many (> 100) / medium (20-100) / few (< 20) groups at
// their boundaries, photo-weighted top-1 and the class mean, the tail's worst classes with what they were taken
// for; counts shifted by one photo at the boundaries (the negative control) move classes between groups. Then the
// run's training counts (dataset.json, or a count of the train split for older runs) and the HTML report's table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { frequencyBreakdown, frequencyGroup, runTrainCounts } from '../src/eval/frequency.js';
import { MetricsAccumulator } from '../src/eval/metrics.js';
import { classCounts, loadDataset, selectSplits } from '../src/data/index.js';
import { renderErrorReport } from '../src/report/error-report.js';
import { EVAL_FILE_FORMAT, type EvalFile } from '../src/run/eval-file.js';
import { sample } from './fixres-helpers.js';
import { tmpDir } from './data-helpers.js';

const NAMES = ['头部', 'b101', 'c100', 'd20', '尾巴19', 'f3', 'g0'];
const TRAIN = [150, 101, 100, 20, 19, 3, 0];

/** Per class (truth -> [predicted...]): class 4 is mostly taken for 3, class 5 for 0, class 6 has no test photo. */
function metrics() {
  const acc = new MetricsAccumulator(NAMES);
  const answers: number[][] = [
    [0, 0, 0, 0, 1],
    [1, 1, 1, 0],
    [2, 2],
    [3, 3, 3],
    [3, 3, 4, 0],
    [0, 5, 0],
  ];
  let i = 0;
  answers.forEach((preds, truth) => {
    for (const p of preds) {
      const scores = new Float32Array(NAMES.length).fill(-3);
      scores[p] = 3;
      acc.add(scores, [truth], [i++]);
    }
  });
  return acc.result();
}

test('frequency groups: boundaries 20 and 100, photo-weighted top-1, class mean, the worst tail classes', () => {
  assert.deepEqual(TRAIN.map(frequencyGroup), ['many', 'many', 'medium', 'medium', 'few', 'few', 'few']);
  const m = metrics();
  const b = frequencyBreakdown(m, TRAIN, 'test');
  // many: classes 0 (4/5) and 1 (3/4); medium: 2 (2/2) and 3 (3/3); few: 4 (1/4), 5 (1/3); class 6 has no photo.
  assert.deepEqual(b.many, { classes: 2, samples: 9, correct: 7, top1: 7 / 9, meanClassAccuracy: (4 / 5 + 3 / 4) / 2 });
  assert.deepEqual(b.medium, { classes: 2, samples: 5, correct: 5, top1: 1, meanClassAccuracy: 1 });
  assert.equal(b.few.classes, 2);
  assert.equal(b.few.samples, 7);
  assert.equal(b.few.correct, 2);
  assert.ok(Math.abs(b.few.top1! - 2 / 7) < 1e-12);
  assert.ok(Math.abs(b.few.meanClassAccuracy! - (1 / 4 + 1 / 3) / 2) < 1e-12);
  assert.equal(b.many.samples + b.medium.samples + b.few.samples, m.samples);
  assert.deepEqual(
    b.worstTail.map((t) => [t.name, t.train, t.support, t.correct, t.confusedWith]),
    [
      ['尾巴19', 19, 4, 1, 'd20'],
      ['f3', 3, 3, 1, '头部'],
    ],
  );
  // Negative control: one photo more or less at each boundary moves classes between the groups.
  const shifted = frequencyBreakdown(m, [150, 100, 101, 19, 20, 3, 0], 'test');
  assert.notDeepEqual(shifted.many, b.many);
  assert.notDeepEqual(shifted.few, b.few);
  assert.throws(() => frequencyBreakdown(m, TRAIN.slice(1), 'test'), /6 training counts for 7 classes/);
});

test("a run's training counts: dataset.json, else the train split counted, none for an old subset run", () => {
  const run = tmpDir('freq-run');
  mkdirSync(run, { recursive: true });
  const write = (v: object) => writeFileSync(join(run, 'dataset.json'), JSON.stringify(v));
  const classes = loadDataset(sample).classes;
  const counted = classCounts(selectSplits(loadDataset(sample), 'train'));
  write({ root: sample, trainSplit: 'train', trainCounts: classes.map((_, i) => i + 1) });
  assert.deepEqual(runTrainCounts(run, classes), {
    counts: classes.map((_, i) => i + 1),
    source: 'dataset.json',
  });
  write({ root: sample, trainSplit: 'train' });
  const older = runTrainCounts(run, classes);
  assert.deepEqual(older?.counts, counted);
  assert.match(older!.source, /the 'train' split of /);
  // The model's class order, not the dataset's: reversed classes get reversed counts.
  assert.deepEqual(runTrainCounts(run, [...classes].reverse())?.counts, [...counted].reverse());
  write({ root: sample, trainSplit: 'train', fraction: 0.5 });
  assert.equal(runTrainCounts(run, classes), undefined);
  write({ root: join(run, 'gone'), trainSplit: 'train' });
  assert.equal(runTrainCounts(run, classes), undefined);
});

test("the error report shows the groups and the tail's worst classes when the eval file has them", async () => {
  const m = metrics();
  const ev: EvalFile = {
    format: EVAL_FILE_FORMAT,
    kind: 'classifier',
    model: 'planted',
    checkpoint: null,
    data: join(sample, 'no-such-folder'),
    split: 'test',
    tta: [],
    classes: NAMES,
    metrics: m,
    predictions: [],
    badFiles: [],
    skipped: [],
  };
  const without = await renderErrorReport(ev, {});
  assert.ok(!without.includes("The tail's worst classes"));
  const html = await renderErrorReport(
    { ...ev, metrics: { ...m, byFrequency: frequencyBreakdown(m, TRAIN, 'dataset.json') } },
    {},
  );
  assert.ok(html.includes('few-shot (&lt;20) (2 classes, 7 photos) <b>28.6%</b>'), 'the few-shot group');
  const tail = html.slice(html.indexOf("The tail's worst classes"));
  assert.ok(tail.indexOf('尾巴19') > 0 && tail.indexOf('尾巴19') < tail.indexOf('f3'), 'worst first');
});
