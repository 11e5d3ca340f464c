// goodsrec export: a run or checkpoint -> model.onnx + model.json sidecar.
import { join } from 'node:path';
import { defineCliCommand } from '../options.js';
import { TTA_MEANS, TTA_VIEWS } from '../../eval/evaluate.js';

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
  },
  async run({ options: o, args }) {
    const { exportRecognizer } = await import('../../serve/onnx/export.js');
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
    const r = exportRecognizer(args.model, {
      outDir,
      ...(o.tta ? { tta: o.tta } : {}),
      ...(o['tta-mean'] ? { ttaMean: o['tta-mean'] } : {}),
      prefer: o.latest ? 'latest' : 'best',
      ...(o.ema ? {} : { ema: false }),
    });
    const nodes = Object.values(r.ops).reduce((a, b) => a + b, 0);
    const s = r.sidecar;
    console.log(
      `${s.model}: ${nodes} ONNX nodes (opset ${s.opset}), ${s.classes.length} classes, input [batch, ${s.input.dims.join(', ')}]`,
    );
    console.log(`wrote ${r.onnxPath}`);
    console.log(`wrote ${r.sidecarPath}`);
  },
});
