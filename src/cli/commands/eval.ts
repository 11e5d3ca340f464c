// goodsrec eval: accuracy of a trained recognizer on a dataset split.
import { dirname, resolve } from 'node:path';
import { loadRecognizer, disposeRecognizer } from '../../eval/predictor.js';
import { evaluate, TTA_MEANS, TTA_VIEWS } from '../../eval/evaluate.js';
import { evaluateEnsemble } from '../../eval/ensemble.js';
import { formatMetrics } from '../../eval/metrics.js';
import { frequencyBreakdown, runTrainCounts } from '../../eval/frequency.js';
import { loadAlignedSplit, loadSplit, recordedDataRoot } from '../../eval/align.js';
import { skippedReport } from '../../data/walk.js';
import { evalPipeline } from '../../run/pipelines.js';
import { rateOrNull, writeEvalFile } from '../../run/eval-file.js';
import { RunFolder } from '../../run/run-folder.js';
import { resolveDevice } from '../../tensor/index.js';
import { defineCliCommand, deviceOption, maxPixelsOption } from '../options.js';
import { EXIT, UsageError } from '../errors.js';

export default defineCliCommand({
  name: 'eval',
  description: 'Evaluate a run or checkpoint on a dataset split: top-1, top-5, per-class accuracy, confusion counts.',
  positionals: {
    model: {
      description:
        'run folder (its best checkpoint), checkpoint folder, ensemble file, or an exported graph (model.onnx or its folder: run in onnxruntime)',
      required: true,
      exists: 'any',
    },
  },
  options: {
    data: { type: 'path', exists: 'any', description: 'dataset folder (default: the one the run was trained on)' },
    split: { type: 'string', default: 'test', description: 'split to evaluate' },
    size: { type: 'integer', min: 16, description: 'test resolution (default: the training resolution)' },
    resize: {
      type: 'enum',
      values: ['letterbox', 'squash', 'center'],
      description: 'resize mode (default: as trained)',
    },
    'crop-pct': {
      type: 'number',
      above: 0,
      max: 1,
      description: 'resize to size/cropPct before the center crop (default: as trained)',
    },
    tta: { type: 'list', of: { type: 'enum', values: TTA_VIEWS }, description: 'test-time views' },
    'tta-mean': {
      type: 'enum',
      values: TTA_MEANS,
      description: "average the views' logits (default) or probabilities",
    },
    'batch-size': { type: 'integer', min: 1, default: 32, description: 'batch size' },
    device: deviceOption,
    'max-pixels': maxPixelsOption,
    out: { type: 'path', description: 'where to write the JSON result (default <run>/eval-<split>.json)' },
    json: { type: 'boolean', description: 'print the metrics as JSON' },
    gallery: {
      type: 'path',
      exists: 'file',
      description: 'score by nearest neighbours in this gallery: top-1, open-set rates, AUROC',
    },
  },
  async run({ options: o, args }) {
    const { exportedGraph } = await import('../../serve/model.js');
    const graph = exportedGraph(args.model);
    if (graph) {
      if (o.gallery || o.size !== undefined || o.resize || o['crop-pct'] !== undefined)
        throw new UsageError('--gallery, --size, --resize and --crop-pct do not apply to an exported graph');
      const tta = o.tta ?? [];
      if (tta.some((v) => v !== 'flip')) throw new UsageError('an exported graph is evaluated with --tta flip only');
      const { readSidecar, sidecarPathFor } = await import('../../serve/model.js');
      const { evaluateOnnx } = await import('../../serve/onnx/evaluate.js');
      const sidecar = readSidecar(sidecarPathFor(graph));
      const dataRoot = o.data ?? recordedDataRoot(sidecar.source.run ?? undefined);
      if (!dataRoot) throw new UsageError(`no dataset given (--data) and ${graph}'s run records none`);
      const ds = loadAlignedSplit(dataRoot, o.split, sidecar.classes);
      const skipped = ds.skipped ?? [];
      if (skipped.length) console.error(skippedReport(skipped, 'folder entr(ies)'));
      const res = await evaluateOnnx(graph, sidecar, ds, {
        batchSize: o['batch-size'],
        tta: tta as 'flip'[],
        ttaMean: o['tta-mean'] ?? 'logits',
        keepTopK: 5,
        maxPixels: o['max-pixels'],
        onBatch: (done, total) => {
          if (process.stderr.isTTY) process.stderr.write(`\revaluating ${done}/${total}`);
        },
      });
      if (process.stderr.isTTY) process.stderr.write('\n');
      const precision = sidecar.precision ?? 'fp32';
      const out = resolve(o.out ?? new RunFolder(dirname(graph)).evalFile(o.split, 'classifier'));
      writeEvalFile(out, {
        kind: 'classifier',
        model: sidecar.model,
        checkpoint: sidecar.source.checkpoint,
        onnx: { path: resolve(graph), precision, sha256: sidecar.sha256 },
        data: resolve(dataRoot),
        split: o.split,
        preprocess: sidecar.preprocess,
        tta,
        classes: sidecar.classes,
        metrics: res.metrics,
        predictions: res.predictions,
        badFiles: res.badFiles,
        skipped,
        seconds: res.seconds,
      });
      if (o.json) console.log(JSON.stringify({ precision, ...res.metrics }, null, 2));
      else {
        console.log(`${graph} (${precision}, onnxruntime)`);
        console.log(formatMetrics(res.metrics));
        console.log(`written: ${out}`);
      }
      return res.badFiles.length + skipped.length ? EXIT.partial : EXIT.ok;
    }
    const r = loadRecognizer(args.model, {
      device: resolveDevice(o.device),
      maxPixels: o['max-pixels'],
      allowEnsemble: true,
    });
    try {
      if (r.ensemble && (o.size !== undefined || o.resize || o['crop-pct'] !== undefined)) {
        throw new UsageError(
          '--size, --resize and --crop-pct do not apply to an ensemble: each member keeps its own pre-processing',
        );
      }
      const dataRoot = o.data ?? recordedDataRoot(r.runDir ?? r.ensemble?.members[0]?.runDir);
      if (!dataRoot) throw new UsageError('no dataset given (--data) and the run does not record one');
      const tta = o.tta ?? [];
      // Where the file goes by default: the run folder (none for a bare checkpoint or an ensemble: here).
      const outFile = (kind: 'classifier' | 'gallery'): string =>
        resolve(o.out ?? new RunFolder(r.runDir ?? '.').evalFile(o.split, kind));
      if (o.gallery) {
        // The gallery's classes need not be the model's: the split keeps its own labels.
        const split = loadSplit(dataRoot, o.split);
        const skipped = split.skipped ?? [];
        if (skipped.length) console.error(skippedReport(skipped, 'folder entr(ies)'));
        const { evalCommandWithGallery } = await import('./gallery.js');
        const out = outFile('gallery');
        const started = Date.now();
        const { result, summary } = await evalCommandWithGallery(r, o.gallery, split, { tta });
        const { predictions, badFiles, ...m } = result;
        writeEvalFile(out, {
          kind: 'gallery',
          model: r.modelName,
          checkpoint: r.checkpointDir,
          gallery: resolve(o.gallery),
          data: resolve(dataRoot),
          split: o.split,
          preprocess: r.preprocess,
          tta,
          metrics: {
            ...m,
            top1: rateOrNull(m.top1),
            acceptedCorrect: rateOrNull(m.acceptedCorrect),
            unknownRejected: rateOrNull(m.unknownRejected),
            auroc: rateOrNull(m.auroc),
          },
          predictions,
          badFiles,
          skipped,
          seconds: (Date.now() - started) / 1000,
        });
        console.log(
          o.json ? JSON.stringify({ ...result, predictions: undefined }, null, 2) : `${summary}\nwritten: ${out}`,
        );
        return badFiles.length + skipped.length ? EXIT.partial : EXIT.ok;
      }
      const ds = loadAlignedSplit(dataRoot, o.split, r.classes);
      const skipped = ds.skipped ?? [];
      if (skipped.length) console.error(skippedReport(skipped, 'folder entr(ies)'));
      const pre = {
        ...r.preprocess,
        ...(o.size !== undefined ? { size: o.size } : {}),
        ...(o.resize ? { resize: o.resize } : {}),
        ...(o['crop-pct'] !== undefined ? { cropPct: o['crop-pct'] } : {}),
      };
      const common = {
        batchSize: o['batch-size'],
        tta,
        ttaMean: o['tta-mean'] ?? 'logits',
        keepTopK: 5,
        onBatch: (done: number, total: number) => {
          if (process.stderr.isTTY) process.stderr.write(`\revaluating ${done}/${total}`);
        },
      };
      // An ensemble file: each member with its own pre-processing.
      const res = r.ensemble
        ? {
            ...(
              await evaluateEnsemble(r.ensemble.members, ds, {
                ...common,
                weights: r.ensemble.weights,
                mean: r.ensemble.mean,
                tta: tta.length ? tta : r.ensemble.tta,
              })
            ).ensemble,
            badFiles: [],
            seconds: 0,
          }
        : await evaluate(r.model, ds, evalPipeline(pre, o['max-pixels']), { ...common, device: r.device });
      if (process.stderr.isTTY) process.stderr.write('\n');
      // Accuracy by training frequency, when the run's training photos per class are known.
      const counts = r.runDir && !r.ensemble ? runTrainCounts(r.runDir, r.classes) : undefined;
      if (counts) res.metrics.byFrequency = frequencyBreakdown(res.metrics, counts.counts, counts.source);
      const out = outFile('classifier');
      writeEvalFile(out, {
        kind: 'classifier',
        model: r.modelName,
        checkpoint: r.checkpointDir,
        data: resolve(dataRoot),
        split: o.split,
        preprocess: pre,
        tta,
        classes: r.classes,
        metrics: res.metrics,
        predictions: res.predictions,
        badFiles: res.badFiles,
        skipped,
        seconds: res.seconds,
      });
      if (o.json) console.log(JSON.stringify(res.metrics, null, 2));
      else {
        console.log(formatMetrics(res.metrics));
        if (res.badFiles.length) console.log(`${res.badFiles.length} bad file(s) skipped (listed in the JSON)`);
        console.log(`written: ${out}`);
      }
      return res.badFiles.length + skipped.length ? EXIT.partial : EXIT.ok;
    } finally {
      disposeRecognizer(r);
    }
  },
});
