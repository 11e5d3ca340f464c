/** Dataset analysis, its HTML page and the `goodsrec analyze` command. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, readFileSync, copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from 'citty';
import sharp from 'sharp';
import {
  analyzeDataset,
  computeChannelStats,
  readFolderDataset,
  selectSplits,
  resolvePipeline,
  needsDatasetStats,
  type PipelineConfig,
} from '../src/data/index.js';
import { renderAnalysisHtml } from '../src/report/analyze-html.js';
import analyzeCommand from '../src/cli/commands/analyze.js';
import { tmpDir } from './data-helpers.js';

async function makeDataset(): Promise<string> {
  const root = tmpDir('analyze');
  const mk = async (p: string, w: number, h: number, c: [number, number, number]) => {
    mkdirSync(join(root, p, '..'), { recursive: true });
    await sharp({ create: { width: w, height: h, channels: 3, background: { r: c[0], g: c[1], b: c[2] } } })
      .png()
      .toFile(join(root, p));
  };
  for (let i = 0; i < 6; i++) await mk(`train/tall/t${i}.png`, 20, 60, [i * 10, 0, 0]); // aspect 3
  for (let i = 0; i < 2; i++) await mk(`train/square/s${i}.png`, 30, 30, [0, i * 10 + 5, 0]);
  await mk('test/square/s0.png', 31, 29, [0, 0, 200]);
  copyFileSync(join(root, 'train/tall/t0.png'), join(root, 'train/tall/t0_copy.png')); // within split
  copyFileSync(join(root, 'train/square/s1.png'), join(root, 'test/square/s1_leak.png')); // across splits
  copyFileSync(join(root, 'train/tall/t1.png'), join(root, 'test/square/mislabelled.png')); // across, other label
  writeFileSync(join(root, 'test/square/broken.png'), Buffer.from('not a png at all'));
  return root;
}

test('analyzeDataset: long tail, aspect ratios, sizes, duplicates within/across splits, bad files', async () => {
  const root = await makeDataset();
  const a = await analyzeDataset(root);
  assert.equal(a.images, 13);
  assert.deepEqual(a.splits, { test: 4, train: 9 });
  assert.deepEqual(
    a.classes.map((c) => [c.name, c.total]),
    [
      ['tall', 7],
      ['square', 6],
    ],
  );
  assert.equal(a.longTail.maxPerClass, 7);
  assert.equal(a.longTail.emptyInSplit['test'], 1);
  const tallBin = a.aspect.histogram.find((b) => b.lo === 3)!;
  assert.equal(tallBin.count, 8, 'the 7 tall images and the mislabelled copy have h/w = 3');
  assert.ok(Math.abs(a.aspect.fractionTallerThan1_5 - 8 / 12) < 1e-9);
  assert.equal(a.sizes.maxHeight, 60);
  assert.equal(a.sizes.formats['png'], 12);
  assert.equal(a.duplicates.withinSplit, 1);
  assert.equal(a.duplicates.crossSplit, 2);
  assert.equal(a.duplicates.conflictingLabels, 1);
  assert.equal(a.duplicates.redundantFiles, 3);
  assert.deepEqual(
    a.badFiles.map((b) => [b.path, b.reason]),
    [['test/square/broken.png', 'not-an-image']],
  );

  const html = renderAnalysisHtml(a);
  assert.ok(html.includes('echarts') && html.length > 500_000, 'ECharts must be inlined');
  const json = /<script id="analysis" type="application\/json">([\s\S]*?)<\/script>/.exec(html)![1]!;
  assert.equal(JSON.parse(json).images, 13);
  assert.ok(!/<script[^>]+src=/.test(html), 'no external scripts');
});

test('computeChannelStats: per-channel mean and std over all pixels', async () => {
  const root = tmpDir('stats');
  mkdirSync(join(root, 'train', 'a'), { recursive: true });
  // Two images: all (255, 0, 51) 10x10 and all (0, 0, 51) 10x30 -> R mean 0.25, std sqrt(0.25*0.75).
  await sharp({ create: { width: 10, height: 10, channels: 3, background: { r: 255, g: 0, b: 51 } } })
    .png()
    .toFile(join(root, 'train', 'a', '1.png'));
  await sharp({ create: { width: 10, height: 30, channels: 3, background: { r: 0, g: 0, b: 51 } } })
    .png()
    .toFile(join(root, 'train', 'a', '2.png'));
  const s = await computeChannelStats(selectSplits(readFolderDataset(root), 'train'));
  assert.equal(s.images, 2);
  assert.ok(Math.abs(s.mean[0] - 0.25) < 1e-9 && Math.abs(s.std[0] - Math.sqrt(0.1875)) < 1e-9, JSON.stringify(s));
  assert.ok(Math.abs(s.mean[2] - 0.2) < 1e-9 && s.std[2] < 1e-6 && s.mean[1] === 0);
  // 'dataset' statistics and the 'mean' padding colour resolve to numbers stored with the run.
  const cfg: PipelineConfig = {
    ops: [
      { op: 'letterbox', size: 8, fill: 'mean' },
      { op: 'normalize', mean: 'dataset', std: 'dataset' },
    ],
  };
  assert.ok(needsDatasetStats(cfg));
  assert.throws(() => resolvePipeline(cfg), /needs dataset statistics/);
  const r = resolvePipeline(cfg, s);
  assert.deepEqual(r.ops[0], { op: 'letterbox', size: 8, fill: [64, 0, 51] });
  assert.deepEqual(r.ops[1], { op: 'normalize', mean: s.mean, std: s.std });
});

test('goodsrec analyze writes JSON and HTML, never into the dataset', async () => {
  const root = await makeDataset();
  const out = join(tmpDir('analyze-out'), 'report');
  const err = console.error;
  const lines: string[] = [];
  console.error = (...a: unknown[]) => {
    lines.push(a.join(' '));
  };
  try {
    await runCommand(analyzeCommand, { rawArgs: [root, '--out', out] });
    process.exitCode = undefined;
    // Errors take the CLI's one error path: a message and exit code 2 (a usage error), no exception.
    await runCommand(analyzeCommand, { rawArgs: [root, '--out', join(root, 'analysis')] });
    assert.equal(process.exitCode, 2);
    assert.match(lines.join('\n'), /inside the dataset/);
  } finally {
    console.error = err;
    process.exitCode = undefined;
  }
  const a = JSON.parse(readFileSync(join(out, 'analysis.json'), 'utf8'));
  assert.equal(a.images, 13);
  assert.ok(existsSync(join(out, 'analysis.html')));
  assert.ok(!existsSync(join(root, 'analysis')));
});
