// goodsrec export: a run or checkpoint -> model.onnx + model.json sidecar.
import { defineCommand } from 'citty';
import { join } from 'node:path';
import { fail } from '../errors.js';

export default defineCommand({
  meta: { name: 'export', description: 'Export a trained recognizer to ONNX (model.onnx + model.json with classes and pre-processing).' },
  args: {
    model: { type: 'positional', description: 'run folder (its best checkpoint), checkpoint folder, or ensemble file', required: true },
    format: { type: 'string', description: "export format: 'onnx'", default: 'onnx' },
    out: { type: 'string', description: 'output folder (default <run>/export-onnx)' },
    tta: { type: 'string', description: "test-time views traced into the graph: 'flip', 'zoom', 'zoomflip' (comma-separated; default: an ensemble's own)" },
    'tta-mean': { type: 'string', description: "average the views' 'logits' (default) or 'probs'" },
    latest: { type: 'boolean', description: 'export the latest checkpoint instead of the best' },
    ema: { type: 'boolean', description: 'use the EMA weights when the checkpoint has them (--no-ema: the raw weights)', default: true },
  },
  async run({ args }) {
    try {
      if (args.format !== 'onnx') throw new Error(`--format: unknown format '${args.format}' (known: onnx)`);
      const { parseTta } = await import('../../eval/evaluate.js');
      const { tta, ttaMean } = parseTta(args.tta, args['tta-mean']);
      const { exportRecognizer } = await import('../../serve/onnx/export.js');
      const { resolveCheckpoint } = await import('../../train/checkpoint.js');
      const { isEnsembleFile } = await import('../../eval/ensemble.js');
      let outDir = args.out;
      if (!outDir) {
        if (isEnsembleFile(args.model)) outDir = args.model.replace(/\.[^./]+$/, '') + '-onnx';
        else {
          const { runDir, checkpointDir } = resolveCheckpoint(args.model, args.latest ? 'latest' : 'best');
          outDir = join(runDir ?? checkpointDir, 'export-onnx');
        }
      }
      const r = exportRecognizer(args.model, {
        outDir, ...(args.tta ? { tta } : {}), ...(args['tta-mean'] ? { ttaMean } : {}), prefer: args.latest ? 'latest' : 'best', ...(args.ema === false ? { ema: false } : {}),
      });
      const nodes = Object.values(r.ops).reduce((a, b) => a + b, 0);
      console.log(`${r.sidecar.model}: ${nodes} ONNX nodes (opset ${r.sidecar.opset}), ${r.sidecar.classes.length} classes, input [batch, ${r.sidecar.input.dims.join(', ')}]`);
      console.log(`wrote ${r.onnxPath}`);
      console.log(`wrote ${r.sidecarPath}`);
    } catch (e) {
      if (process.env.GOODSREC_DEBUG) console.error(e);
      fail((e as Error).message);
    }
  },
});
