// goodsrec eval: accuracy of a trained recognizer on a dataset split.
import { defineCommand } from 'citty';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadDataset, selectSplits, type Dataset } from '../../data/index.js';
import { loadRecognizer, disposeRecognizer } from '../../eval/predictor.js';
import { evaluate, parseTta } from '../../eval/evaluate.js';
import { evaluateEnsemble } from '../../eval/ensemble.js';
import { formatMetrics } from '../../eval/metrics.js';
import { evalPipeline } from '../../train/pipelines.js';
import { writeJsonAtomic } from '../../util/atomic.js';
import { fail } from '../errors.js';
import type { Device } from '../../tensor/index.js';

/** Maps the dataset's labels onto the model's class list by name. */
export function alignClasses(ds: Dataset, modelClasses: readonly string[], source: string): Dataset {
  const index = new Map(modelClasses.map((c, i) => [c, i]));
  const unknown = ds.classes.filter((c, i) => !index.has(c) && ds.samples.some((s) => s.label === i));
  if (unknown.length) {
    throw new Error(`${source}: ${unknown.length} class(es) the model was not trained on: ${unknown.slice(0, 8).join(', ')}${unknown.length > 8 ? ', ...' : ''}`);
  }
  return { root: ds.root, classes: [...modelClasses], samples: ds.samples.map((s) => ({ ...s, label: index.get(ds.classes[s.label]!)! })) };
}

export default defineCommand({
  meta: { name: 'eval', description: 'Evaluate a run or checkpoint on a dataset split: top-1, top-5, per-class accuracy, confusion counts.' },
  args: {
    model: { type: 'positional', description: 'run folder (its best checkpoint) or checkpoint folder', required: true },
    data: { type: 'string', description: 'dataset folder (default: the one the run was trained on)' },
    split: { type: 'string', description: 'split to evaluate', default: 'test' },
    size: { type: 'string', description: 'test resolution (default: the training resolution)' },
    resize: { type: 'string', description: "'letterbox' or 'squash' (default: as trained)" },
    'crop-pct': { type: 'string', description: 'resize to size/cropPct before the center crop (default: as trained)' },
    tta: { type: 'string', description: "test-time views, comma-separated: flip, zoom, zoomflip" },
    'tta-mean': { type: 'string', description: "average the views' 'logits' (default) or 'probs'" },
    'batch-size': { type: 'string', description: 'batch size', default: '32' },
    device: { type: 'string', description: "'cpu', 'cuda', 'cuda:N'", default: 'cpu' },
    out: { type: 'string', description: 'where to write the JSON result (default <run>/eval-<split>.json)' },
    json: { type: 'boolean', description: 'print the metrics as JSON' },
    gallery: { type: 'string', description: 'score by nearest neighbours in this gallery: top-1, open-set rates, AUROC' },
  },
  async run({ args }) {
    try {
      const r = loadRecognizer(args.model, { device: args.device as Device, allowEnsemble: true });
      const infoDir = r.runDir ?? r.ensemble?.members[0]!.runDir;
      const runCfg = infoDir ? readFileSync(join(infoDir, 'dataset.json'), 'utf8') : '{}';
      const dataRoot = args.data ?? (JSON.parse(runCfg) as { root?: string }).root;
      if (!dataRoot) throw new Error('no dataset given (--data) and the run does not record one');
      const all = loadDataset(dataRoot);
      const split = selectSplits(all, args.split);
      if (split.samples.length === 0) throw new Error(`dataset ${dataRoot}: split '${args.split}' has no images`);
      if (args.gallery) {
        const { tta } = parseTta(args.tta);
        const { evalCommandWithGallery } = await import('./gallery.js');
        const out = resolve(args.out ?? join(r.runDir ?? '.', `eval-${args.split}-gallery.json`));
        try {
          const { result, summary } = await evalCommandWithGallery(r, args.gallery, split, { tta });
          writeJsonAtomic(out, { model: r.modelName, checkpoint: r.checkpointDir, gallery: resolve(args.gallery), data: resolve(dataRoot), split: args.split, tta, ...result });
          console.log(args.json ? JSON.stringify({ ...result, predictions: undefined }, null, 2) : `${summary}\nwritten: ${out}`);
        } finally { disposeRecognizer(r); }
        return;
      }
      const ds = alignClasses(split, r.classes, dataRoot);
      const pre = { ...r.preprocess };
      if (args.size) pre.size = Number(args.size);
      if (args.resize) { if (args.resize !== 'letterbox' && args.resize !== 'squash') throw new Error(`--resize: expected 'letterbox' or 'squash' but received '${args.resize}'`); pre.resize = args.resize; }
      if (args['crop-pct']) pre.cropPct = Number(args['crop-pct']);
      if (!(Number.isInteger(pre.size) && pre.size >= 16)) throw new Error(`--size: expected an integer >= 16 but received '${args.size}'`);
      const { tta, ttaMean } = parseTta(args.tta, args['tta-mean']);
      const common = {
        batchSize: Number(args['batch-size']), tta, ttaMean, keepTopK: 5,
        onBatch: (done: number, total: number) => { if (process.stderr.isTTY) process.stderr.write(`\revaluating ${done}/${total}`); },
      };
      // An ensemble file: each member with its own pre-processing.
      if (r.ensemble && (args.size || args.resize || args['crop-pct'])) throw new Error('--size, --resize and --crop-pct do not apply to an ensemble: each member keeps its own pre-processing');
      const res = r.ensemble
        ? { ...(await evaluateEnsemble(r.ensemble.members, ds, { ...common, weights: r.ensemble.weights, mean: r.ensemble.mean, tta: tta.length ? tta : r.ensemble.tta })).ensemble, badFiles: [], seconds: 0 }
        : await evaluate(r.model, ds, evalPipeline(pre), { ...common, device: r.device });
      if (process.stderr.isTTY) process.stderr.write('\n');
      const out = resolve(args.out ?? join(r.runDir ?? '.', `eval-${args.split}.json`));
      writeJsonAtomic(out, {
        model: r.modelName, checkpoint: r.checkpointDir, data: resolve(dataRoot), split: args.split, preprocess: pre, tta,
        classes: r.classes, metrics: res.metrics, predictions: res.predictions, badFiles: res.badFiles, seconds: res.seconds,
      });
      if (args.json) console.log(JSON.stringify(res.metrics, null, 2));
      else {
        console.log(formatMetrics(res.metrics));
        if (res.badFiles.length) console.log(`${res.badFiles.length} bad file(s) skipped (listed in the JSON)`);
        console.log(`written: ${out}`);
      }
      disposeRecognizer(r);
    } catch (e) {
      if (process.env.GOODSREC_DEBUG) console.error(e);
      fail((e as Error).message);
    }
  },
});
