// goodsrec ensemble: evaluate several recognizers and their weighted mean; save them as one unit.
import { dirname, relative, resolve } from 'node:path';
import { loadRecognizer, disposeRecognizer, type LoadedRecognizer } from '../../eval/predictor.js';
import { TTA_MEANS, TTA_VIEWS } from '../../eval/evaluate.js';
import { evaluateEnsemble, writeEnsemble } from '../../eval/ensemble.js';
import { formatMetrics } from '../../eval/metrics.js';
import { loadAlignedSplit, recordedDataRoot } from '../../eval/align.js';
import { writeEvalFile } from '../../run/eval-file.js';
import { resolveDevice } from '../../tensor/index.js';
import { defineCliCommand, deviceOption } from '../options.js';
import { EXIT, UsageError } from '../errors.js';

const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;

export default defineCliCommand({
  name: 'ensemble',
  description:
    'Evaluate several runs (each with its own pre-processing) and the mean of their logits or probabilities; ' +
    '--save writes the ensemble for predict/eval.',
  positionals: {
    runs: {
      description: 'run folders or checkpoint folders (two or more)',
      required: true,
      variadic: true,
      exists: 'any',
    },
  },
  options: {
    data: { type: 'path', exists: 'any', description: "dataset folder (default: the first run's)" },
    split: { type: 'string', default: 'test', description: 'split to evaluate' },
    weights: { type: 'list', of: { type: 'number', min: 0 }, description: 'member weights (default equal)' },
    mean: { type: 'enum', values: TTA_MEANS, default: 'logits', description: 'average logits or probabilities' },
    tta: { type: 'list', of: { type: 'enum', values: TTA_VIEWS }, description: 'test-time views for every member' },
    'batch-size': { type: 'integer', min: 1, default: 32, description: 'batch size' },
    device: deviceOption,
    save: { type: 'path', description: 'write the ensemble (members, weights, mean) to this JSON file' },
    out: { type: 'path', description: "write the ensemble's evaluation (eval JSON, for goodsrec report) here" },
    json: { type: 'boolean', description: 'print the metrics as JSON' },
  },
  async run({ options: o, args }) {
    const paths = args.runs;
    if (paths.length < 2) throw new UsageError('give two or more runs: goodsrec ensemble <run> <run> [...]');
    if (o.weights && o.weights.length !== paths.length) {
      throw new UsageError(`--weights: ${o.weights.length} weight(s) for ${paths.length} runs; give one per run`);
    }
    const tta = o.tta ?? [];
    const members: LoadedRecognizer[] = [];
    try {
      const device = resolveDevice(o.device);
      for (const p of paths) members.push(loadRecognizer(p, { device }));
      const first = members[0]!;
      const dataRoot = o.data ?? recordedDataRoot(first.runDir);
      if (!dataRoot) throw new UsageError('no dataset given (--data) and the first run does not record one');
      const ds = loadAlignedSplit(dataRoot, o.split, first.classes);
      const res = await evaluateEnsemble(members, ds, {
        weights: o.weights,
        mean: o.mean,
        tta,
        batchSize: o['batch-size'],
        keepTopK: 5,
      });
      const rows = res.members.map((m, i) => ({
        member: `${m.name} @${members[i]!.preprocess.size}px`,
        checkpoint: m.checkpoint,
        weight: m.weight,
        top1: m.metrics.top1,
        top5: m.metrics.top5,
      }));
      if (o.save) {
        const base = dirname(resolve(o.save));
        writeEnsemble(resolve(o.save), {
          members: members.map((m, i) => ({
            run: m.runDir ? relative(base, m.runDir) || '.' : null,
            checkpoint: relative(base, m.checkpointDir),
            weight: res.members[i]!.weight,
          })),
          mean: o.mean,
          ...(tta.length ? { tta } : {}),
        });
      }
      const badFiles = res.members.flatMap((m) => m.badFiles);
      if (o.out) {
        writeEvalFile(resolve(o.out), {
          kind: 'classifier',
          model: `ensemble(${res.members.map((m) => m.name).join(', ')})`,
          checkpoint: o.save ? resolve(o.save) : null,
          members: rows,
          data: resolve(dataRoot),
          split: o.split,
          preprocess: first.preprocess,
          tta,
          mean: o.mean,
          classes: first.classes,
          metrics: res.ensemble.metrics,
          predictions: res.ensemble.predictions,
          badFiles,
          skipped: ds.skipped ?? [],
        });
      }
      const partial = badFiles.length + (ds.skipped?.length ?? 0) ? EXIT.partial : EXIT.ok;
      if (o.json) {
        console.log(
          JSON.stringify(
            { members: rows, ensemble: { top1: res.ensemble.metrics.top1, top5: res.ensemble.metrics.top5 } },
            null,
            2,
          ),
        );
        return partial;
      }
      for (const r of rows)
        console.log(
          `${pct(r.top1).padStart(7)} top-1  ${pct(r.top5).padStart(7)} top-5  w=${r.weight.toFixed(3)}  ${r.member}  ${r.checkpoint}`,
        );
      console.log(`ensemble (${o.mean} mean${tta.length ? `, tta ${tta.join('+')}` : ''}):`);
      console.log(formatMetrics(res.ensemble.metrics));
      if (o.save) console.log(`saved: ${resolve(o.save)} (goodsrec predict ${o.save} <images>)`);
      if (o.out) console.log(`written: ${resolve(o.out)}`);
      return partial;
    } finally {
      for (const m of members) disposeRecognizer(m);
    }
  },
});
