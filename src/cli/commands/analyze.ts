/** `goodsrec analyze <dataset>`: dataset analysis as JSON plus a self-contained HTML page. */
import { defineCommand } from 'citty';
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve, isAbsolute } from 'node:path';

export default defineCommand({
  meta: { name: 'analyze', description: 'Analyse a dataset: images per class, aspect ratios, sizes, duplicates, bad files (JSON + HTML)' },
  args: {
    dataset: { type: 'positional', required: true, description: 'dataset folder (root/<split>/<class>/<img>), manifest folder (classes.csv + <split>.txt) or goodsrec manifest (.json/.csv)' },
    out: { type: 'string', description: 'output folder (default: ./analysis-<dataset name>)' },
    splits: { type: 'string', description: 'comma-separated splits to analyse (default: all)' },
    quick: { type: 'boolean', description: 'read headers only (faster; does not find truncated files)', default: false },
    json: { type: 'boolean', description: 'also print the analysis JSON to stdout', default: false },
  },
  async run({ args }) {
    const { analyzeDataset } = await import('../../data/analyze.js');
    const { renderAnalysisHtml } = await import('../../report/analyze-html.js');
    const { loadDataset } = await import('../../data/dataset.js');
    const splits = args.splits ? String(args.splits).split(',').map((s) => s.trim()).filter(Boolean) : undefined;
    const ds = loadDataset(String(args.dataset), splits ? { splits } : {});
    const out = resolve(args.out ? String(args.out) : `analysis-${basename(resolve(String(args.dataset)))}`);
    const rel = relative(ds.root, out);
    if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) {
      throw new Error(`output folder ${out} is inside the dataset ${ds.root}; goodsrec never writes into a dataset: choose --out elsewhere`);
    }
    const tty = process.stderr.isTTY;
    let last = 0;
    const a = await analyzeDataset(ds, {
      decode: !args.quick,
      onProgress: (d, n) => {
        const now = Date.now();
        if (tty && (now - last > 200 || d === n)) { last = now; process.stderr.write(`\ranalysing ${d}/${n}`); }
      },
    });
    if (tty) process.stderr.write('\n');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'analysis.json'), JSON.stringify(a, null, 2));
    writeFileSync(join(out, 'analysis.html'), renderAnalysisHtml(a, `goodsrec analysis: ${basename(ds.root)}`));
    if (args.json) process.stdout.write(JSON.stringify(a) + '\n');
    const lt = a.longTail;
    console.error([
      `${a.images} images, ${a.classes.length} classes; splits ${Object.entries(a.splits).map(([k, v]) => `${k}=${v}`).join(' ')}`,
      `per class: max ${lt.maxPerClass}, median ${lt.medianPerClass}, min ${lt.minPerClass}`,
      `aspect h/w median ${a.aspect.median.toFixed(2)}, ${(a.aspect.fractionTallerThan1_5 * 100).toFixed(1)}% at least 1.5`,
      `duplicates: ${a.duplicates.withinSplit} groups within a split, ${a.duplicates.crossSplit} across splits (${a.duplicates.conflictingLabels} with differing labels)`,
      `bad files: ${a.badFiles.length}${a.badFiles.length ? ' (' + Object.entries(a.badByReason).map(([k, v]) => `${k} ${v}`).join(', ') + ')' : ''}`,
      `wrote ${join(out, 'analysis.json')} and ${join(out, 'analysis.html')}`,
    ].join('\n'));
  },
});
