// goodsrec export: a trained recognizer (run or checkpoint) -> model.onnx +
// model.json (everything needed to use it: classes, pre-processing, TTA).
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as T from '../../tensor/index.js';
import type { Module } from '../../nn/module.js';
import { loadRecognizer } from '../../eval/predictor.js';
import { goodsrecVersion } from '../../util/version.js';
import { IR_VERSION, OPSET } from './graph.js';
import { traceModel } from './trace.js';
import type { PreprocessConfig } from '../../train/pipelines.js';

/** Views whose logits are averaged at inference ('flip': horizontal mirror), as `goodsrec predict --tta`. */
export type TtaView = 'flip';

/** The JSON sidecar next to model.onnx. */
export interface OnnxSidecar {
  format: 'goodsrec-onnx';
  formatVersion: 1;
  model: string;
  goodsrecVersion: string;
  opset: number;
  irVersion: number;
  /** Input tensor: [batch, 3, size, size] float32, normalised CHW. */
  input: { name: string; dims: number[] };
  /** Output tensor: [batch, classes] logits (softmax not applied). */
  output: { name: string; dims: number[] };
  classes: string[];
  preprocess: PreprocessConfig;
  tta: TtaView[];
  source: { checkpoint: string | null; run: string | null; ema: boolean };
  /** sha256 of model.onnx, so a sidecar is never paired with another graph. */
  sha256: string;
}

export interface ExportModelOptions {
  /** Input size (square). */
  size: number;
  inChans?: number;
  /** Producer metadata stored in the graph. */
  metadata?: Record<string, string>;
}

/** Traces a model in eval mode and returns the serialised ONNX graph plus its input/output description. */
export function exportModel(model: Module, o: ExportModelOptions): { bytes: Uint8Array; input: { name: string; dims: number[] }; output: { name: string; dims: number[] }; ops: Record<string, number> } {
  const wasTraining = model.training;
  model.eval();
  try {
    const example = T.randn([2, o.inChans ?? 3, o.size, o.size]).keep();
    try {
      const tr = traceModel(model, example);
      const bytes = tr.graph.encode({
        input: tr.input, inputDims: tr.inputDims, output: tr.output, outputDims: tr.outputDims,
        producer: 'goodsrec', producerVersion: goodsrecVersion(), ...(o.metadata ? { metadata: o.metadata } : {}),
      });
      return { bytes, input: { name: tr.input, dims: tr.inputDims }, output: { name: tr.output, dims: tr.outputDims }, ops: tr.graph.opCounts() };
    } finally {
      example.dispose();
    }
  } finally {
    if (wasTraining) model.train();
  }
}

export interface ExportRecognizerOptions {
  outDir: string;
  tta?: TtaView[];
  prefer?: 'best' | 'latest';
  ema?: boolean;
}

export interface ExportResult { onnxPath: string; sidecarPath: string; sidecar: OnnxSidecar; ops: Record<string, number> }

/** What exportRecognizer needs of a loaded recognizer (loadRecognizer's result has it). */
export interface ExportableRecognizer {
  model: Module;
  modelName: string;
  classes: string[];
  preprocess: PreprocessConfig;
  checkpointDir?: string;
  runDir?: string | undefined;
  ema?: boolean;
}

/** Exports a run or checkpoint folder to outDir/model.onnx + outDir/model.json (written atomically). */
export function exportRecognizer(path: string, o: ExportRecognizerOptions): ExportResult {
  const r = loadRecognizer(path, { ...(o.prefer ? { prefer: o.prefer } : {}), ...(o.ema !== undefined ? { ema: o.ema } : {}) });
  try {
    return exportLoaded(r, o);
  } finally {
    r.model.dispose();
  }
}

/** Exports a recognizer already in memory. */
export function exportLoaded(r: ExportableRecognizer, o: Pick<ExportRecognizerOptions, 'outDir' | 'tta'>): ExportResult {
  const { bytes, input, output, ops } = exportModel(r.model, {
    size: r.preprocess.size,
    metadata: { model: r.modelName, classes: String(r.classes.length) },
  });
  if (output.dims[0] !== r.classes.length) throw new Error(`export: the model gives ${output.dims.join('x')} outputs for ${r.classes.length} classes`);
  const outDir = resolve(o.outDir);
  mkdirSync(outDir, { recursive: true });
  const onnxPath = join(outDir, 'model.onnx');
  const sidecarPath = join(outDir, 'model.json');
  const sidecar: OnnxSidecar = {
    format: 'goodsrec-onnx', formatVersion: 1, model: r.modelName, goodsrecVersion: goodsrecVersion(),
    opset: OPSET, irVersion: IR_VERSION, input, output, classes: r.classes, preprocess: r.preprocess,
    tta: o.tta ?? [], source: { checkpoint: r.checkpointDir ?? null, run: r.runDir ?? null, ema: r.ema ?? false },
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
  // Graph first, sidecar last: a reader that finds the sidecar finds a complete graph.
  writeFileSync(onnxPath + '.tmp', bytes);
  renameSync(onnxPath + '.tmp', onnxPath);
  writeFileSync(sidecarPath + '.tmp', JSON.stringify(sidecar, null, 2) + '\n');
  renameSync(sidecarPath + '.tmp', sidecarPath);
  return { onnxPath, sidecarPath, sidecar, ops };
}
