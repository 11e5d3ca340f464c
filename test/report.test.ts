// Error report: its numbers (confused pairs, calibration bins) and both HTML
// reports (dataset analysis and error report) in headless Chromium: plots
// rendered, thumbnails loaded, no console errors, a screenshot each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset, selectSplits, analyzeDataset } from '../src/data/index.js';
import { MetricsAccumulator } from '../src/eval/metrics.js';
import type { SamplePrediction } from '../src/eval/evaluate.js';
import { renderErrorReport, reliability, confusedPairs } from '../src/report/error-report.js';
import { EVAL_FILE_FORMAT, type EvalFile } from '../src/run/eval-file.js';
import { renderAnalysisHtml } from '../src/report/analyze-html.js';
import { repoRoot, sample } from './fixres-helpers.js';
import { artifacts, chromiumSkip, openPage, withChromium } from './helpers/chromium-page.js';

const work = mkdtempSync(join(tmpdir(), 'goodsrec-report-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

/** An evaluation of the sample's test split with planted mistakes: every 3rd image of class k is called k+1 (class 0 also confused with 2). */
function plantedEval(): EvalFile {
  const ds = selectSplits(loadDataset(sample), 'test');
  const c = ds.classes.length;
  const acc = new MetricsAccumulator(ds.classes);
  const predictions: SamplePrediction[] = ds.samples.map((s, i) => {
    const wrong = i % 3 === 0 ? (s.label + 1) % c : s.label === 0 && i % 5 === 1 ? 2 : -1;
    const top1 = wrong >= 0 ? wrong : s.label;
    const conf = wrong >= 0 ? 0.55 + (i % 9) * 0.05 : 0.6 + (i % 4) * 0.1;
    const second = top1 === s.label ? (s.label + 2) % c : s.label;
    const scores = new Float32Array(c).fill(-5);
    scores[top1] = 5;
    scores[second] = 1;
    acc.add(scores, [s.label], [i]);
    return { index: i, path: s.path, label: s.label, top: [top1, second], probs: [conf, (1 - conf) / 2] };
  });
  return {
    format: EVAL_FILE_FORMAT,
    kind: 'classifier',
    model: 'planted',
    checkpoint: null,
    data: sample,
    split: 'test',
    preprocess: { size: 32 },
    tta: [],
    classes: ds.classes,
    metrics: acc.result(),
    predictions,
    badFiles: [],
    skipped: [],
  };
}

test('confused pairs and reliability bins from an evaluation', () => {
  const pairs = confusedPairs(
    [
      [5, 2, 0],
      [3, 4, 1],
      [0, 0, 9],
    ],
    2,
  );
  assert.deepEqual(pairs, [
    { truth: 1, predicted: 0, count: 3 },
    { truth: 0, predicted: 1, count: 2 },
  ]);
  const preds: SamplePrediction[] = [
    { index: 0, path: 'a', label: 0, top: [0], probs: [0.95] },
    { index: 1, path: 'b', label: 1, top: [0], probs: [0.91] },
    { index: 2, path: 'c', label: 1, top: [1], probs: [0.35] },
  ];
  const r = reliability(preds, 10);
  assert.equal(r.bins[9]!.count, 2);
  assert.equal(r.bins[9]!.accuracy, 0.5);
  assert.equal(r.bins[3]!.count, 1);
  // ECE = 2/3 * |0.5 - 0.93| + 1/3 * |1 - 0.35|
  assert.ok(Math.abs(r.ece - ((2 / 3) * 0.43 + (1 / 3) * 0.65)) < 1e-9);
});

test('the error report names the most confused pair first and embeds thumbnails', async () => {
  const ev = plantedEval();
  const html = await renderErrorReport(ev, { pairs: 4, mistakes: 6, thumb: 48 });
  const top = confusedPairs(ev.metrics.confusion, 1)[0]!;
  const firstPair = html.indexOf('<div class="pair">');
  assert.ok(firstPair > 0);
  assert.ok(
    html
      .slice(firstPair, firstPair + 400)
      .includes(`${top.count}× <b>${ev.classes[top.truth]}</b> → <b>${ev.classes[top.predicted]}</b>`),
  );
  const thumbs = html.match(/src="data:image\/jpeg;base64,/g) ?? [];
  assert.ok(thumbs.length >= 6 + 4, `${thumbs.length} thumbnails`);
  assert.equal((html.match(/<tr><td>/g) ?? []).length, ev.classes.length);
  // The command: eval JSON in, HTML next to it.
  const evalJson = join(work, 'eval-test.json');
  writeFileSync(evalJson, JSON.stringify(ev));
  const r = spawnSync(
    process.execPath,
    [join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'report', evalJson, '--pairs', '4'],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.ok(readFileSync(join(work, 'eval-test.html'), 'utf8').includes('Most confused pairs (4)'));
  writeFileSync(join(work, 'bad.json'), '{"metrics":{}}');
  const bad = spawnSync(
    process.execPath,
    [join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'report', join(work, 'bad.json')],
    { encoding: 'utf8' },
  );
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /bad\.json: not an evaluation written by goodsrec eval/);
});

test('both HTML reports render in headless Chromium: plots drawn, thumbnails loaded, no console errors', {
  skip: chromiumSkip(),
}, async () => {
  const analysisHtml = join(work, 'analysis.html');
  writeFileSync(analysisHtml, renderAnalysisHtml(await analyzeDataset(sample), 'sample analysis'));
  const errorsHtml = join(work, 'errors-browser.html');
  writeFileSync(errorsHtml, await renderErrorReport(plantedEval(), { pairs: 4, mistakes: 8, thumb: 64 }));
  await withChromium(async (browser) => {
    for (const [file, charts, shot] of [
      [analysisHtml, 3, 'analysis-report.png'],
      [errorsHtml, 3, 'error-report.png'],
    ] as const) {
      const { page, painted, images: imgs, errors } = await openPage(browser, file);
      // Every chart container holds a canvas with painted (non-transparent) pixels.
      assert.equal(painted.length, charts, `${shot}: chart containers`);
      for (const [i, n] of painted.entries()) assert.ok(n > 500, `${shot}: chart ${i} has ${n} painted pixels`);
      if (file === errorsHtml) {
        assert.ok(imgs.length >= 8, `${imgs.length} thumbnails`);
        assert.deepEqual(
          imgs.filter((i) => !i.ok),
          [],
          'every thumbnail decoded',
        );
        // The table sorts: click 'accuracy' twice gives descending order.
        await page.click('#classes th:nth-child(5)');
        await page.click('#classes th:nth-child(5)');
        const acc = await page.evaluate(() =>
          Array.from(document.querySelectorAll('#classes tbody tr')).map((tr) => Number(tr.children[4]!.textContent)),
        );
        assert.deepEqual(
          acc,
          [...acc].sort((a, b) => b - a),
        );
      }
      assert.deepEqual(errors, [], `${shot}: console errors`);
      await page.screenshot({ path: join(artifacts, shot), fullPage: true });
      await page.close();
    }
  });
});
