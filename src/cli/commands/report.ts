// goodsrec report: self-contained HTML error analysis of an evaluation JSON.
import { defineCommand } from 'citty';
import { resolve } from 'node:path';
import { writeFileAtomic } from '../../util/atomic.js';
import { fail } from '../errors.js';

export default defineCommand({
  meta: { name: 'report', description: 'HTML error analysis of an eval JSON (goodsrec eval / ensemble --out): per-class accuracy, long tail, confused pairs, confident mistakes, calibration.' },
  args: {
    eval: { type: 'positional', description: 'eval JSON, e.g. <run>/eval-test.json', required: true },
    out: { type: 'string', description: 'HTML file (default: the eval JSON with .html)' },
    'train-split': { type: 'string', description: "split whose class counts are the class frequency (default 'train')" },
    pairs: { type: 'string', description: 'confused class pairs to show', default: '12' },
    mistakes: { type: 'string', description: 'confident mistakes to show', default: '24' },
  },
  async run({ args }) {
    try {
      const { readEvalFile, renderErrorReport } = await import('../../report/error-report.js');
      const ev = readEvalFile(args.eval);
      const int = (name: string, v: string): number => { const n = Number(v); if (!(Number.isInteger(n) && n >= 0)) throw new Error(`--${name}: expected an integer >= 0 but received '${v}'`); return n; };
      const html = await renderErrorReport(ev, { pairs: int('pairs', args.pairs), mistakes: int('mistakes', args.mistakes), ...(args['train-split'] ? { trainSplit: args['train-split'] } : {}) });
      const out = resolve(args.out ?? args.eval.replace(/\.json$/i, '') + '.html');
      writeFileAtomic(out, html);
      console.log(`written: ${out} (${(html.length / 1024).toFixed(0)} KiB; open it in a browser)`);
    } catch (e) {
      if (process.env.GOODSREC_DEBUG) console.error(e);
      fail((e as Error).message);
    }
  },
});
