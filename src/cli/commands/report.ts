// goodsrec report: self-contained HTML error analysis of an evaluation JSON.
import { resolve } from 'node:path';
import { writeFileAtomic } from '../../util/atomic.js';
import { defineCliCommand } from '../options.js';

export default defineCliCommand({
  name: 'report',
  description:
    'HTML error analysis of an eval JSON (goodsrec eval / ensemble --out): per-class accuracy, long tail, ' +
    'confused pairs, confident mistakes, calibration.',
  positionals: { eval: { description: 'eval JSON, e.g. <run>/eval-test.json', required: true, exists: 'file' } },
  options: {
    out: { type: 'path', description: 'HTML file (default: the eval JSON with .html)' },
    'train-split': {
      type: 'string',
      description: "split whose class counts are the class frequency (default 'train')",
    },
    pairs: { type: 'integer', min: 0, default: 12, description: 'confused class pairs to show' },
    mistakes: { type: 'integer', min: 0, default: 24, description: 'confident mistakes to show' },
  },
  async run({ options: o, args }) {
    const { renderErrorReport } = await import('../../report/error-report.js');
    const { readEvalFile } = await import('../../run/eval-file.js');
    const ev = readEvalFile(args.eval);
    const html = await renderErrorReport(ev, {
      pairs: o.pairs,
      mistakes: o.mistakes,
      ...(o['train-split'] ? { trainSplit: o['train-split'] } : {}),
    });
    const out = resolve(o.out ?? args.eval.replace(/\.json$/i, '') + '.html');
    writeFileAtomic(out, html);
    console.log(`written: ${out} (${(html.length / 1024).toFixed(0)} KiB; open it in a browser)`);
  },
});
