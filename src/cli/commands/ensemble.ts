// goodsrec ensemble: evaluate several recognizers and their weighted mean; save them as one unit.
import { defineCommand } from 'citty';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { loadDataset, selectSplits } from '../../data/index.js';
import { loadRecognizer, disposeRecognizer, type LoadedRecognizer } from '../../eval/predictor.js';
import { parseTta } from '../../eval/evaluate.js';
import { evaluateEnsemble, writeEnsemble } from '../../eval/ensemble.js';
import { formatMetrics } from '../../eval/metrics.js';
import { writeJsonAtomic } from '../../util/atomic.js';
import { fail } from '../errors.js';
import { alignClasses } from './eval.js';
import type { Device } from '../../tensor/index.js';

const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;

export default defineCommand({
  meta: { name: 'ensemble', description: 'Evaluate several runs (each with its own pre-processing) and the mean of their logits or probabilities; --save writes the ensemble for predict/eval.' },
  args: {
    runs: { type: 'positional', description: 'run folders or checkpoint folders (two or more)', required: true },
    data: { type: 'string', description: "dataset folder (default: the first run's)" },
    split: { type: 'string', description: 'split to evaluate', default: 'test' },
    weights: { type: 'string', description: 'comma-separated member weights (default equal)' },
    mean: { type: 'string', description: "average 'logits' (default) or 'probs'", default: 'logits' },
    tta: { type: 'string', description: 'test-time views for every member: flip, zoom, zoomflip' },
    'batch-size': { type: 'string', description: 'batch size', default: '32' },
    device: { type: 'string', description: "'cpu', 'cuda', 'cuda:N'", default: 'cpu' },
    save: { type: 'string', description: 'write the ensemble (members, weights, mean) to this JSON file' },
    out: { type: 'string', description: "write the ensemble's evaluation (eval JSON, for goodsrec report) here" },
    json: { type: 'boolean', description: 'print the metrics as JSON' },
  },
  async run({ args }) {
    const members: LoadedRecognizer[] = [];
    try {
      const paths = args._;
      if (paths.length < 2) throw new Error('give two or more runs: goodsrec ensemble <run> <run> [...]');
      if (args.mean !== 'logits' && args.mean !== 'probs') throw new Error(`--mean: expected 'logits' or 'probs' but received '${args.mean}'`);
      const weights = args.weights ? args.weights.split(',').map((w) => Number(w)) : undefined;
      const { tta } = parseTta(args.tta);
      for (const p of paths) members.push(loadRecognizer(p, { device: args.device as Device }));
      const first = members[0]!;
      const dataRoot = args.data ?? (first.runDir ? (JSON.parse(readFileSync(join(first.runDir, 'dataset.json'), 'utf8')) as { root?: string }).root : undefined);
      if (!dataRoot) throw new Error('no dataset given (--data) and the first run does not record one');
      const split = selectSplits(loadDataset(dataRoot), args.split);
      if (split.samples.length === 0) throw new Error(`dataset ${dataRoot}: split '${args.split}' has no images`);
      const ds = alignClasses(split, first.classes, dataRoot);
      const res = await evaluateEnsemble(members, ds, { weights, mean: args.mean, tta, batchSize: Number(args['batch-size']), keepTopK: 5 });
      const rows = res.members.map((m, i) => ({ member: `${m.name} @${members[i]!.preprocess.size}px`, checkpoint: m.checkpoint, weight: m.weight, top1: m.metrics.top1, top5: m.metrics.top5 }));
      if (args.save) {
        const base = dirname(resolve(args.save));
        writeEnsemble(resolve(args.save), {
          members: members.map((m, i) => ({ run: m.runDir ? relative(base, m.runDir) || '.' : null, checkpoint: relative(base, m.checkpointDir), weight: res.members[i]!.weight })),
          mean: args.mean, ...(tta.length ? { tta } : {}),
        });
      }
      if (args.out) {
        writeJsonAtomic(resolve(args.out), {
          model: `ensemble(${res.members.map((m) => m.name).join(', ')})`, checkpoint: args.save ? resolve(args.save) : null, members: rows,
          data: resolve(dataRoot), split: args.split, preprocess: first.preprocess, tta, mean: args.mean, classes: first.classes,
          metrics: res.ensemble.metrics, predictions: res.ensemble.predictions, badFiles: res.members.flatMap((m) => m.badFiles),
        });
      }
      if (args.json) { console.log(JSON.stringify({ members: rows, ensemble: { top1: res.ensemble.metrics.top1, top5: res.ensemble.metrics.top5 } }, null, 2)); return; }
      for (const r of rows) console.log(`${pct(r.top1).padStart(7)} top-1  ${pct(r.top5).padStart(7)} top-5  w=${r.weight.toFixed(3)}  ${r.member}  ${r.checkpoint}`);
      console.log(`ensemble (${args.mean} mean${tta.length ? `, tta ${tta.join('+')}` : ''}):`);
      console.log(formatMetrics(res.ensemble.metrics));
      if (args.save) console.log(`saved: ${resolve(args.save)} (goodsrec predict ${args.save} <images>)`);
      if (args.out) console.log(`written: ${resolve(args.out)}`);
    } catch (e) {
      if (process.env.GOODSREC_DEBUG) console.error(e);
      fail((e as Error).message);
    } finally {
      for (const m of members) disposeRecognizer(m);
    }
  },
});
