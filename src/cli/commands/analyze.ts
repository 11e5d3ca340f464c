/** `goodsrec analyze <dataset>`: dataset analysis as JSON plus a self-contained HTML page. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve, isAbsolute } from 'node:path';
import { defineCliCommand, maxPixelsOption } from '../options.js';
import { EXIT, UsageError } from '../errors.js';

export default defineCliCommand({
  name: 'analyze',
  description: 'Analyse a dataset: images per class, aspect ratios, sizes, duplicates, bad files (JSON + HTML)',
  positionals: {
    dataset: {
      description:
        'dataset folder (root/<split>/<class>/<img>), manifest folder (classes.csv + <split>.txt) or goodsrec manifest (.json/.csv)',
      required: true,
      exists: 'any',
    },
  },
  options: {
    out: { type: 'path', description: 'output folder (default: ./analysis-<dataset name>)' },
    splits: { type: 'string', description: 'comma-separated splits to analyse (default: all)' },
    quick: { type: 'boolean', description: 'read headers only (faster; does not find truncated files)' },
    json: { type: 'boolean', description: 'also print the analysis JSON to stdout' },
    'max-pixels': maxPixelsOption,
  },
  async run({ options: o, args }) {
    const { analyzeDataset } = await import('../../data/analyze.js');
    const { renderAnalysisHtml } = await import('../../report/analyze-html.js');
    const { loadDataset } = await import('../../data/dataset.js');
    const { formatSkipped } = await import('../../data/walk.js');
    const splits = o.splits
      ? o.splits
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : undefined;
    const ds = loadDataset(args.dataset, splits ? { splits } : {});
    const out = resolve(o.out ?? `analysis-${basename(resolve(args.dataset))}`);
    const rel = relative(ds.root, out);
    if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) {
      throw new UsageError(
        `output folder ${out} is inside the dataset ${ds.root}; goodsrec never writes into a dataset: choose --out elsewhere`,
      );
    }
    const tty = process.stderr.isTTY;
    let last = 0;
    const a = await analyzeDataset(ds, {
      decode: !o.quick,
      maxPixels: o['max-pixels'],
      onProgress: (d, n) => {
        const now = Date.now();
        if (tty && (now - last > 200 || d === n)) {
          last = now;
          process.stderr.write(`\ranalysing ${d}/${n}`);
        }
      },
    });
    if (tty) process.stderr.write('\n');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'analysis.json'), JSON.stringify(a, null, 2));
    writeFileSync(join(out, 'analysis.html'), renderAnalysisHtml(a, `goodsrec analysis: ${basename(ds.root)}`));
    if (o.json) process.stdout.write(JSON.stringify(a) + '\n');
    const lt = a.longTail;
    const reasons = Object.entries(a.badByReason)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    console.error(
      [
        `${a.images} images, ${a.classes.length} classes; splits ${Object.entries(a.splits)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`,
        `per class: max ${lt.maxPerClass}, median ${lt.medianPerClass}, min ${lt.minPerClass}`,
        `aspect h/w median ${a.aspect.median.toFixed(2)}, ${(a.aspect.fractionTallerThan1_5 * 100).toFixed(1)}% at least 1.5`,
        `duplicates: ${a.duplicates.withinSplit} groups within a split, ${a.duplicates.crossSplit} across splits ` +
          `(${a.duplicates.conflictingLabels} with differing labels)`,
        `bad files: ${a.badFiles.length}${a.badFiles.length ? ` (${reasons})` : ''}`,
        ...(a.skipped.length ? [`skipped folder entries: ${a.skipped.length}`, ...formatSkipped(a.skipped)] : []),
        `wrote ${join(out, 'analysis.json')} and ${join(out, 'analysis.html')}`,
      ].join('\n'),
    );
    return a.badFiles.length + a.skipped.length ? EXIT.partial : EXIT.ok;
  },
});
