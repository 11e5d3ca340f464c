// goodsrec export: a run or checkpoint -> model.onnx + model.json sidecar.
import { join } from 'node:path';
import { defineCliCommand } from '../options.js';
import { UsageError } from '../errors.js';
import { TTA_MEANS, TTA_VIEWS } from '../../eval/evaluate.js';
import { CALIBRATION_CHOICES } from '../../serve/onnx/quantize.js';

export default defineCliCommand({
  name: 'export',
  description: 'Export a trained recognizer to ONNX (model.onnx + model.json with classes and pre-processing).',
  positionals: {
    model: {
      description: 'run folder (its best checkpoint), checkpoint folder, or ensemble file',
      required: true,
      exists: 'any',
    },
  },
  options: {
    format: { type: 'enum', values: ['onnx'], default: 'onnx', description: 'export format' },
    out: { type: 'path', description: 'output folder (default <run>/export-onnx)' },
    tta: {
      type: 'list',
      of: { type: 'enum', values: TTA_VIEWS },
      description: "test-time views traced into the graph (default: an ensemble's own)",
    },
    'tta-mean': {
      type: 'enum',
      values: TTA_MEANS,
      description: "average the views' logits (default) or probabilities",
    },
    latest: { type: 'boolean', description: 'export the latest checkpoint instead of the best' },
    ema: {
      type: 'boolean',
      default: true,
      description: 'use the EMA weights when the checkpoint has them (--no-ema: the raw weights)',
    },
    int8: {
      type: 'boolean',
      description:
        'int8 graph: BatchNorm folded, per-channel int8 weights, uint8 activations calibrated on training photos',
    },
    calibration: {
      type: 'integer',
      min: 1,
      default: 256,
      description:
        '--int8: calibration photos from the training split (class by class), through the eval pre-processing',
    },
    'calibration-method': {
      type: 'enum',
      values: CALIBRATION_CHOICES,
      default: 'auto',
      description:
        '--int8: activation ranges from the central 99.99 % of values (percentile), their extremes (minmax), the least squared uint8 error (mse), the least KL divergence (entropy), or each tried and the int8 graph closest to float kept (auto)',
    },
    'calibration-percentile': {
      type: 'number',
      min: 50,
      max: 100,
      description: "--int8: the percentile method's share of the values kept, in % (default 99.99)",
    },
    'calibration-data': {
      type: 'path',
      exists: 'any',
      description: "--int8: dataset of the calibration photos (default: the run's)",
    },
    'calibration-split': {
      type: 'string',
      description: "--int8: split of the calibration photos (default: the run's training split)",
    },
  },
  async run({ options: o, args }) {
    if (o['calibration-percentile'] !== undefined && !['percentile', 'auto'].includes(o['calibration-method']))
      throw new UsageError(
        `--calibration-percentile applies to --calibration-method percentile, not ${o['calibration-method']}`,
      );
    const { exportRecognizer, exportRecognizerInt8 } = await import('../../serve/onnx/export.js');
    const { resolveCheckpoint } = await import('../../run/checkpoint.js');
    const { isEnsembleFile } = await import('../../eval/ensemble.js');
    let outDir = o.out;
    if (!outDir) {
      if (isEnsembleFile(args.model)) outDir = args.model.replace(/\.[^./]+$/, '') + '-onnx';
      else {
        const { runDir, checkpointDir } = resolveCheckpoint(args.model, o.latest ? 'latest' : 'best');
        outDir = join(runDir ?? checkpointDir, 'export-onnx');
      }
    }
    const common = {
      outDir,
      ...(o.tta ? { tta: o.tta } : {}),
      ...(o['tta-mean'] ? { ttaMean: o['tta-mean'] } : {}),
      prefer: o.latest ? ('latest' as const) : ('best' as const),
      ...(o.ema ? {} : { ema: false }),
    };
    const r = o.int8
      ? await exportRecognizerInt8(args.model, {
          ...common,
          calibration: o.calibration,
          method: o['calibration-method'],
          ...(o['calibration-percentile'] !== undefined ? { percentile: o['calibration-percentile'] } : {}),
          ...(o['calibration-data'] ? { data: o['calibration-data'] } : {}),
          ...(o['calibration-split'] ? { split: o['calibration-split'] } : {}),
          onProgress: (line) => console.log(line),
        })
      : exportRecognizer(args.model, common);
    const nodes = Object.values(r.ops).reduce((a, b) => a + b, 0);
    const s = r.sidecar;
    console.log(
      `${s.model}: ${nodes} ONNX nodes (opset ${s.opset}), ${s.classes.length} classes, input [batch, ${s.input.dims.join(', ')}]`,
    );
    const q = s.quantization;
    if (q)
      console.log(
        `int8: ${q.convs} convolutions quantized, ${q.bnFolded} BatchNorms folded, ranges by ${q.calibration.method}${q.calibration.auto ? ' (chosen by auto)' : ''} on ${q.calibration.photos} photos`,
      );
    console.log(`wrote ${r.onnxPath}`);
    console.log(`wrote ${r.sidecarPath}`);
  },
});
